"""Where a WhatsApp Web number's linked device lives, and how the Go client opens it.

`base` is the seam (`DeviceStore`, `Opening`), `choice` picks one of the two stores:
`file` (a SQLite file in the state directory: one machine) and `database` (PostgreSQL,
shared by the fleet: the session resumes on whichever node holds the number's lease).
Nothing here imports neonize.
"""

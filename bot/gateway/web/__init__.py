"""WhatsApp Web through neonize (whatsmeow in Go): one linked device per number.

`gateway` sends and receives; `connection` connects, reconnects and gives up; `pairing`
links the device (QR, pair code), shown by `qr`; `session` keeps its keys owner-only;
`goclient` holds the rules for calling Go, `probe` the reachability check before it;
`normalize` turns events into messages, `ordered` keeps their order, `presence` our own.

Nothing is imported here: importing neonize loads its Go library (and the daemon sets the
bot label before that), so importing `session` or `qr` must not import `gateway`.
"""

"""Transports: how wabot talks to WhatsApp, on WhatsApp Web (`web`, neonize) or Meta's Cloud
API (`cloud`), or to a test (`memory`). What every transport shares is here: the seam
(`base`), the send pace (`pacer`), WhatsApp's restrictions, the business phone's last sign."""

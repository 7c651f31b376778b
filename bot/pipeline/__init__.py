"""The flow's middle: the inbox routes what the transport delivered, through the policies
(takeover, limits, opt-out, media), to the agent; the presenter delivers the reply."""

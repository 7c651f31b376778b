"""What is answered later, grouped: nothing a customer wrote is left without an answer.

- `undelivered`: replies WhatsApp refused while offline, sent again when it is back.
- `capped_and_failed`: messages over a customer's daily cap, and turns that failed (the
  model was down), answered once the cap or the model allows.
- `backlog`: what WhatsApp kept while the daemon was offline, answered oldest chat first.
- `instructions`: what the agent is told in such a turn (and when a flood joins one turn).
"""

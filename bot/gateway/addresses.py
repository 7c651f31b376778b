"""The JIDs WhatsApp addresses a chat by, when they differ from the address wabot replies to.

whatsmeow rewrites a phone JID to the chat's LID only inside SendMessage (send.go, the
`to.Server == types.DefaultUserServer` branch: GetLIDForPN, "Replacing SendMessage
destination with LID"). MarkRead (receipt.go) and SendChatPresence (presence.go) put the JID
they are given in the node's "to" unchanged, and BuildRevoke's key names the chat as given:
a LID-addressed chat must get its receipts, typing and revokes at its LID, or they land in a
chat the customer's phone does not show.
"""

from __future__ import annotations

from collections import OrderedDict

from bot.models import InboundMessage

KEPT = 50_000  # chats whose WhatsApp JID differs from the reply address


class RawChats:
    """reply address → the chat JID WhatsApp last used for it, learned from inbound."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._raw: OrderedDict[str, str] = OrderedDict()

    def learn(self, msg: InboundMessage) -> None:
        if not msg.chat_jid or msg.chat_jid == msg.chat:
            self._raw.pop(msg.chat, None)  # the chat went back to its phone JID
            return
        self._raw[msg.chat] = msg.chat_jid
        self._raw.move_to_end(msg.chat)
        while len(self._raw) > self._kept:
            self._raw.popitem(last=False)

    def __call__(self, chat: str) -> str:
        """The JID to read, type and revoke in, for the chat replied to at `chat`."""
        return self._raw.get(chat, chat)


def receipts_by_sender(batch: list[InboundMessage]) -> dict[str, list[str]]:
    """Message ids to mark read, by sender. whatsmeow receipt.go MarkRead: the sender "must
    be set in group chats" (it becomes the receipt's participant), one call per sender; in
    DMs it is ignored, so a DM batch is one call."""
    senders: dict[str, list[str]] = {}
    for m in batch:
        group = (m.chat_jid or m.chat).endswith("@g.us")
        if group and not m.sender_jid:
            continue  # read back from the journal, which keeps no sender: no wrong receipt
        senders.setdefault(m.sender_jid if group else "", []).append(m.msg_id)
    return senders

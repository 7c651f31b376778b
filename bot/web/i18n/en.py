"""The console in English: every key the pages use, and the fallback of the others.

`{name}` is filled in by the page; an entry used with `t.html` may hold markup of ours.
"""

from __future__ import annotations

TEXTS: dict[str, str] = {
    # the header
    "nav.today": "Today",
    "nav.customers": "Customers",
    "nav.alerts": "Alerts",
    "nav.fleet": "Fleet",
    "nav.number": "Number",
    "nav.go": "Go",
    "nav.logout": "Log out",
    # the WhatsApp card
    "conn.pair_code": "Enter the pair code <strong class=\"pair-code\">{code}</strong> on the "
                      "phone: WhatsApp → Linked devices → Link a device → Link with phone "
                      "number instead. It expires in about two and a half minutes; scanning "
                      "the QR code still works.",
    "conn.scan": "Scan in WhatsApp → Linked devices → Link a device. The code refreshes as "
                 "it rotates.",
    "conn.qr_alt": "QR code to link WhatsApp",
    "conn.waiting": "Replies wait in the journal and go out once connected.",
    "conn.offline_hint": "wabot keeps retrying on its own; linking (QR or pair code) is "
                         "offered once WhatsApp is reachable.",
    "conn.pair_cli_hint": "To link with a pair code instead of a QR, run "
                          "<code>wabot login --pair-phone +E164</code>.",
    "status.connected_as": "connected as {who}",
    "status.connected": "connected",
    "status.not_connected": "not connected",
    "status.not_started": "not started",
    "status.waiting_qr": "waiting for QR scan",
    "status.offline": "offline: {why}",
    "status.offline_retry": "offline: {why}reconnecting in {seconds} s",
    "status.disconnected": "offline: WhatsApp disconnected, reconnecting",
    "status.keepalive": "offline: WhatsApp keep-alive timed out, reconnecting",
    "status.elsewhere": "served by another node of the fleet",
    # the pair-code form
    "pair.title": "Link with a pair code",
    "pair.code_for": "Pair code for {phone}: <strong class=\"pair-code\" "
                     "data-testid=\"pair-code\">{code}</strong>",
    "pair.instructions": "On that phone: WhatsApp → Settings → Linked devices → Link a "
                         "device → Link with phone number instead → enter the code. It "
                         "expires in about two and a half minutes.",
    "pair.intro": "Instead of scanning the QR code: type the business's WhatsApp number and "
                  "enter the code shown here on that phone.",
    "pair.number": "Business number",
    "pair.button": "Get a pair code",
    # today
    "today.title": "Today",
    "today.messages_in": "Messages in",
    "today.messages_out": "Messages out",
    "today.turns": "Turns",
    "today.failures": "Failures",
    "today.tokens": "Tokens",
    "today.cost": "Cost",
    "today.agents_cached": "Agents cached",
    "today.followups_pending": "Follow-ups pending",
    "days.title": "Last 30 days",
    "days.cost": "Cost (USD)",
    "chart.max": "max {value}",
    "chart.no_data": "no data yet",
    "chart.funnel": "lifecycle funnel",
    "funnel.title": "Lifecycle",
    "funnel.lead": "leads",
    "funnel.customer": "customers",
    "funnel.active_user": "active",
    "funnel.churned": "churned",
    # alerts
    "alerts.title": "Alerts",
    "alerts.unread": "{n} unread",
    "alerts.kept": "Every alert is kept here and sent as the <code>owner.alert</code> "
                   "webhook event.",
    "alerts.mark_all": "Mark all read",
    "alerts.mark_read": "Mark read",
    "alerts.new": "new",
    "alerts.open": "open",
    "alerts.open_chat": "open the chat",
    "alerts.none": "No alerts.",
    "alerts.where_off": "Not on WhatsApp: alerts.to_self is off.",
    "alerts.where_owner": "Also on WhatsApp, to {to} (alerts.owner_number).",
    "alerts.where_template": "Also on WhatsApp, to {to}: as text while that phone has "
                             "written to the business within 24 h, else as the template "
                             "{template!r}.",
    "alerts.where_window": "Also on WhatsApp, to {to}, but only while that phone has written "
                           "to the business within 24 h: set alerts.template (an approved "
                           "template) for the rest.",
    "alerts.where_self": "Also on WhatsApp, in your \"Message yourself\" chat.",
    "alerts.where_cloud": "Not on WhatsApp: the Cloud API cannot write to the business's own "
                          "number. Set alerts.owner_number (your phone) and alerts.template "
                          "(an approved template) to get them there.",
    "alerts.sent_to": "sent to {to}",
    "alerts.not_sent": "not sent: {why}",
    "alert_kind.turn_failed": "turn failed",
    "alert_kind.restarted_after_crash": "restarted after a crash",
    "alert_kind.human_requested": "human requested",
    "alert_kind.backlog_stale": "backlog too old",
    "alert_kind.daily_cap": "daily cap",
    "alert_kind.undelivered": "undelivered",
    "alert_kind.journal": "database",
    "alert_kind.journal_back": "database back",
    "alert_kind.phone_unseen": "phone not seen",
    # customers
    "customers.search": "Search",
    "customers.search_hint": "name or number",
    "customers.stage": "Stage",
    "customers.any_stage": "any stage",
    "customers.customer": "Customer",
    "customers.last_contact": "Last contact",
    "customers.invalid": "not a WhatsApp number",
    "customers.invalid_hint": "{why}: remove it with wabot forget",
    "customers.paused": "paused",
    "customers.none": "No customers.",
    "customers.newer": "← newer",
    "customers.older": "older →",
    "customers.page": "page {page} of {pages}",
    "stage.lead": "lead",
    "stage.customer": "customer",
    "stage.active_user": "active user",
    "stage.churned": "churned",
    # one customer
    "customer.opted_out": "opted out",
    "customer.resume": "Resume the agent",
    "customer.pause": "Pause the agent",
    "customer.pause_for": "pause for",
    "customer.until_resumed": "until resumed",
    "customer.hour": "1 hour",
    "customer.hours": "{n} hours",
    "customer.day": "1 day",
    "pause.on": "on: the agent answers",
    "pause.off": "off: the agent is silent until `#bot on` or `wabot resume`",
    "pause.until": "paused until {when}",
    "chat.title": "Conversation",
    "chat.followup": "follow-up",
    "chat.skipped": "message skipped",
    "chat.not_sent": "Not sent: {why}",
    "chat.why": "why did it say that?",
    "chat.empty": "Nothing said yet.",
    "chat.sending": "Sending…",
    "chat.send_label": "Send as the business (pauses the agent in this chat)",
    "chat.send": "Send",
    "role.customer": "customer",
    "role.agent": "agent",
    "role.owner": "you",
    "role.note": "note",
    "delivery.accepted": "sent to WhatsApp",
    "delivery.sent": "sent",
    "delivery.delivered": "delivered",
    "delivery.read": "read",
    "delivery.failed": "not delivered",
    "memory.title": "What the agent remembers",
    "memory.no_summary": "No summary yet.",
    "memory.stages": "Stages",
    "followups.title": "Pending follow-ups",
    "followups.cancel": "cancel",
    "followups.none": "None.",
    "followups.moved": "{when} (due {due}; sending hours)",
    "followup_kind.lead_silent": "lead silent",
    "followup_kind.customer_inactive": "customer inactive",
    "notice.paused": "Paused: the agent does not answer this chat.",
    "notice.resumed": "Resumed: the agent answers the next message.",
    "notice.sent": "Sent as the business; the agent is paused in this chat.",
    "notice.sent_via": "Sent as the business (through node {node}); the agent is paused in "
                       "this chat.",
    "notice.cancelled": "Follow-up cancelled.",
    # why did it say that?
    "run.title": "run {id}",
    "run.heading": "Why did it say that?",
    "run.tokens": "{tokens_in} in / {tokens_out} out",
    "run.failed": "failed",
    "run.reply": "Reply:",
    "run.call": "Model call {n}",
    "run.call_tokens": "{tokens_in}/{tokens_out} tokens",
    "run.tools_offered": "Tools offered:",
    "run.none": "none",
    "run.prompt": "Prompt ({n} messages)",
    "run.tool_result": "(tool result)",
    "run.tool_calls": "Tool calls:",
    "run.answer": "Answer:",
    "run_kind.chat": "chat",
    "run_kind.followup": "follow-up",
    # the fleet
    "fleet.numbers": "{n} numbers",
    "fleet.numbers_one": "1 number",
    "fleet.intro": "This page is served by node <code>{node}</code>. Today is the business's "
                   "day; lease times in {zone}.",
    "fleet.number": "Number",
    "fleet.transport": "Transport",
    "fleet.state": "State",
    "fleet.served_by": "Served by",
    "fleet.lease_until": "Lease until",
    "fleet.messages_today": "Messages today",
    "fleet.cost_today": "Model cost today",
    "fleet.configured": "configured",
    "fleet.this_node": "(this node)",
    "fleet.no_node": "no node",
    "fleet.in_out": "{n_in} in · {n_out} out",
    "fleet.alerts_elsewhere": "kept by the node serving it",
    "transport.web": "WhatsApp Web",
    "transport.cloud": "Cloud API",
    "state.connected": "connected",
    "state.offline": "offline",
    "state.unknown": "unknown",
    "state.logged_out": "logged out",
    "state.banned": "banned",
    "state.restricted": "restricted",
    # logging in
    "login.title": "Log in",
    "login.heading": "Log in to the console",
    "login.intro": "Open the link printed by <code>wabot console</code>, or paste the console "
                   "token.",
    "login.token": "Token",
    "login.button": "Log in",
    "login.bad_link": "This login link is invalid, expired or was used already: run "
                      "`wabot console` for a new one.",
    "login.too_many": "Too many failed attempts: wait a minute.",
    "login.wrong_token": "Wrong token.",
    # dates
    "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
    # errors the pages show (the API says them in English)
    "error.title": "Not found",
    "error.not_sent": "Not sent: {why}",
    "error.not_phone": "{text!r} is not a phone number: use E.164 (+5215512345678) or its "
                       "digits",
    "error.unknown_stage": "unknown stage {stage!r}: use {stages}",
    "error.no_customer_check": "no customer {phone} for this business: check the number "
                               "(E.164, e.g. +5215512345678)",
    "error.no_customer": "no customer {phone} for this business",
    "error.empty_text": "text is empty: write the message to send",
    "error.too_long": "text is longer than 4096 characters: split it",
    "error.offline": "WhatsApp is not connected ({status}), so nothing was sent and the agent "
                     "was not paused. Send it again once the dashboard shows WhatsApp "
                     "connected.",
    "error.delivery_unknown": "WhatsApp did not confirm the message in time: it may still "
                              "reach the customer. Look at the chat on the phone before "
                              "sending it again; the agent was not paused.",
    "error.not_delivered": "WhatsApp is not connected, so nothing was sent and the agent was "
                           "not paused. Send it again once the dashboard shows WhatsApp "
                           "connected.",
    "error.refused": "WhatsApp refused the message ({why}), so nothing was sent and the agent "
                     "was not paused.",
    "error.not_followup_id": "{fid!r} is not a follow-up id (as listed by `wabot followups` "
                             "or GET /api/v1/followups: 5215512345678-lead_silent)",
    "error.followups_off": "follow-ups are switched off (followups.enabled)",
    "error.no_followup": "no pending follow-up {fid}",
    "error.no_run": "no run {id} for this business",
    "error.no_number": "no number {number!r} in this fleet: GET /api/v1/numbers lists them "
                       "(`wabot numbers list`)",
    "error.pair_phone": "{phone!r} is not a phone number: type the business's WhatsApp "
                        "number in E.164, e.g. +5215512345678",
    "error.already_linked": "WhatsApp is already linked and connected: nothing to pair "
                            "(unlink this device in WhatsApp first to link another phone)",
    "error.no_pairing": "this transport does not link with a pair code",
    "error.no_pair_code": "no pair code: {why}",
    "error.forward_moved": "node {by} forwarded this send to node {node}, which does not serve "
                           "number {number} either (it just moved): nothing was sent; send it "
                           "again",
    "error.forward_none": "no node serves number {number} now (`wabot numbers list`): nothing was "
                          "sent; send it again once a node serves it",
    "error.forward_no_url": "number {number} is served by node {owner}, which publishes no console"
                            " address (set http.public_url there): nothing was sent; send it from "
                            "that node's console",
    "error.forward_silent": "number {number} is served by node {owner}, whose console ({url}) did "
                            "not answer: nothing was sent ({why})",
    "error.forward_token": "node {owner} (serving number {number}): it refused this node's token: "
                           "give every node the same http.api_token, or send from that node's "
                           "console",
    "error.forward_refused": "node {owner} (serving number {number}): {error}",
}

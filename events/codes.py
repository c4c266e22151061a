"""Stable rejection reason codes (integration.md §4). Never rename one: platforms match on them."""

INVALID_MESSAGE = "invalid_message"          # not JSON, not an object, missing field, wrong type
UNKNOWN_MSG_TYPE = "unknown_msg_type"        # msg_type absent from integration.md §1
INVALID_AMOUNT = "invalid_amount"            # money with more than two decimals, or not finite
NEGATIVE_AMOUNT = "negative_amount"
AMOUNTS_INCONSISTENT = "amounts_inconsistent"
INVALID_DATES = "invalid_dates"              # end before begin
UNKNOWN_PACK = "unknown_pack"
UNKNOWN_STATUS = "unknown_status"
UNKNOWN_MEDINS = "unknown_medins"
NOT_ENROLLED = "not_enrolled"
OUTSIDE_GREEN_CHANNEL = "outside_green_channel"
UNKNOWN_SETTLEMENT = "unknown_settlement"
SETL_ID_CONFLICT = "setl_id_conflict"        # the setl_id was decided for another person (keys are global)
GRANT_ID_CONFLICT = "grant_id_conflict"      # the grant_id was decided for another person
MISSING_PARAMETER = "missing_parameter"      # a rule needs a yearly figure the pack lacks (policy.md §12)
POISON_MESSAGE = "poison_message"            # crashed the adjudicator on every try
MESSAGE_TOO_LARGE = "message_too_large"      # the message, or the commit deciding it, is over NATS max_payload

# Not a rejection: the message was not decided at all (NATS or PostgreSQL down); send it again.
UNAVAILABLE = "unavailable"

ALL = frozenset(v for k, v in dict(globals()).items() if k.isupper() and k != "UNAVAILABLE")

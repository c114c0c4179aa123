"""Direct messages: the one room of a set of people, found or created; its participants are fixed."""

from controller import dms

RULES = [
    ("POST", "/dms", dms.open_dm),
]

"""Where projections/ still finds the stream name and subject reads; everything else imports their homes.

The subject layout is events/subjects.py and the reads are services/nats/reads.py. projections/ is
being rewritten beside this change (its rebuild), so its imports move there after that merge; then
this module goes.
"""
from __future__ import annotations

from events.subjects import PERSON_SUBJECT, STREAM
from services.nats.reads import read_subject

__all__ = ["PERSON_SUBJECT", "STREAM", "read_subject"]

"""The stream sequence our own pull loop (shared/eventstore.py) reads from a delivery's reply subject."""

from shared.eventstore import stream_sequence


def test_the_stream_sequence_is_read_from_both_forms_of_a_jetstream_reply_subject() -> None:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
    assert stream_sequence("$JS.ACK.MAM_EVENTS.reader1.1.4711.12.1763744000000000000.88") == 4711
    # The newer form: a domain and an account hash after $JS.ACK, a random token at the end.
    assert stream_sequence("$JS.ACK.hub.ACCHASH.MAM_EVENTS.reader1.2.4712.13.1763744000000000000.87.tok") == 4712

"""Transcript parsing: plain text, SRT, WebVTT and segments, on the real meetings of the shared
transcripts (QMSum; tests.conftest.TRANSCRIPTS), whose .srt and .vtt carry the same turns as the .txt.

Pure Python: no database.
"""

from __future__ import annotations

import pytest

from analysis.engine.transcripts import (
    TranscriptError, Turn, detect_format, normalize_transcript, parse_segments, parse_transcript, render_turns,
)
from tests.conftest import transcript as read

CAPTIONED = ["TS3010a", "ES2009b", "Bed015"]


def speakers_and_texts(turns: list[Turn]) -> list[tuple[str | None, str]]:
    return [(turn.speaker, turn.text) for turn in turns]


# --- The real meetings ------------------------------------------------------


@pytest.mark.parametrize("meeting", CAPTIONED)
def test_format_is_detected(meeting: str) -> None:
    assert detect_format(read(f"{meeting}.txt")) == "text"
    assert detect_format(read(f"{meeting}.srt")) == "srt"
    assert detect_format(read(f"{meeting}.vtt")) == "vtt"


@pytest.mark.parametrize("meeting", CAPTIONED)
def test_srt_and_vtt_carry_the_same_turns_as_the_text(meeting: str) -> None:
    from_text = parse_transcript(read(f"{meeting}.txt"))
    from_srt = parse_transcript(read(f"{meeting}.srt"))
    from_vtt = parse_transcript(read(f"{meeting}.vtt"))

    assert len(from_text) > 100
    assert speakers_and_texts(from_srt) == speakers_and_texts(from_text)
    assert speakers_and_texts(from_vtt) == speakers_and_texts(from_text)
    # The captions agree on timing too, and the text has none.
    assert [turn.start for turn in from_srt] == [turn.start for turn in from_vtt]
    assert all(turn.start is None for turn in from_text)


def test_text_turns_are_the_lines_of_the_file() -> None:
    raw = read("TS3010a.txt")
    turns = parse_transcript(raw)

    assert len(turns) == 168  # the README's count
    assert {turn.speaker for turn in turns} == {"Project Manager", "Industrial Designer", "Marketing", "User Interface"}
    assert turns[1] == Turn("Industrial Designer", None, "{vocalsound}")
    # Nothing to add, nothing lost: rendering gives the file back.
    assert render_turns(turns) == raw.strip()


def test_empty_turns_are_dropped_and_their_neighbours_merged() -> None:
    # Bed015 has 1,259 lines; two are a bare "Grad B: " / "Grad A: ", each
    # between two turns of the same speaker, which then become one.
    turns = parse_transcript(read("Bed015.txt"))

    assert len(turns) == 1259 - 4
    assert {"Grad A", "Grad B", "Grad D", "Grad E", "Grad F", "Professor C"} == {turn.speaker for turn in turns}
    merged = next(turn for turn in turns if turn.text.startswith("Sometimes I 'm intentionally inconsistent"))
    assert merged.speaker == "Grad F"
    assert "inconsistent cuz I 'm not sure yet" in merged.text


def test_caption_start_times() -> None:
    turns = parse_transcript(read("TS3010a.srt"))

    assert [turn.start for turn in turns[:4]] == [0.0, 15.5, 16.6, 68.9]
    # "00:01:09,1000" (a generator's rounding of 999.6 ms) is 70 seconds.
    assert turns[4] == Turn("Project Manager", 70.0, "You have to make your own favourite animal .")
    starts = [turn.start for turn in turns]
    assert starts == sorted(starts)


def test_rendered_captions_have_timestamps_and_speakers() -> None:
    rendered = normalize_transcript(read("TS3010a.vtt"))
    lines = rendered.split("\n")

    assert len(lines) == 168
    assert lines[0].startswith("[00:00:00] Project Manager: So welcome . The first kick-off meeting .")
    assert lines[1] == "[00:00:15] Industrial Designer: {vocalsound}"
    assert lines[4] == "[00:01:10] Project Manager: You have to make your own favourite animal ."
    assert normalize_transcript(read("TS3010a.srt")) == rendered


@pytest.mark.parametrize("meeting", ["covid_2", "education_0", "Bro011", "IS1006b"])
def test_every_speaker_of_the_other_meetings_is_recognized(meeting: str) -> None:
    # Parliamentary records have speakers such as "Right Hon. Justin Trudeau
    # (Prime Minister)" and texts with colons ("It's a simple question: Yes or no").
    raw = read(f"{meeting}.txt")
    expected = [line.split(": ", 1)[0] for line in raw.splitlines() if line.strip()]

    assert [turn.speaker for turn in parse_transcript(raw)] == expected


# --- Plain text -------------------------------------------------------------


@pytest.mark.parametrize(
    "line, speaker",
    [
        ("Project Manager: Hello", "Project Manager"),
        ("Grad F: Hello", "Grad F"),
        ("SPEAKER_01: Hello", "SPEAKER_01"),
        ("Speaker 2: Hello", "Speaker 2"),
        ("Dr. Mary van der Berg: Hello", "Dr. Mary van der Berg"),
        ("Hon. Bill Blair (Minister of Public Safety and Emergency Preparedness): Hello",
         "Hon. Bill Blair (Minister of Public Safety and Emergency Preparedness)"),
        ("So the plan is: we ship on Friday", None),
        ("Yes, and the answer: no", None),
        ("Why?: because", None),
        ("It works well. Then: we go", None),
        ("We met at 10:30 and left", None),
        ("See https://example.com for details", None),
        ("One Two Three Four Five Six: too many words", None),
        ("alice: lowercase is not taken for a name", None),
    ],
)
def test_only_name_like_prefixes_are_speakers(line: str, speaker: str | None) -> None:
    [turn] = parse_transcript(line, "text")

    assert turn.speaker == speaker
    if speaker is None:
        assert turn.text == line


def test_plain_text_timestamps() -> None:
    text = "[00:00:02] Alice: Hi.\n(00:01:05.5) Bob: Hello.\n[1:02:03] Carol: Late.\n[00:10:00] no speaker here"

    turns = parse_transcript(text)

    assert turns == [
        Turn("Alice", 2.0, "Hi."),
        Turn("Bob", 65.5, "Hello."),
        Turn("Carol", 3723.0, "Late."),
        Turn(None, 600.0, "no speaker here"),
    ]
    assert render_turns(turns).split("\n") == [
        "[00:00:02] Alice: Hi.",
        "[00:01:05] Bob: Hello.",
        "[01:02:03] Carol: Late.",
        "[00:10:00] no speaker here",
    ]


def test_lines_without_a_speaker_continue_the_turn() -> None:
    text = "Meeting notes, 3 May\n\nAlice:\nHello there.\n\nStill me.\nBob: Hi.\nBob: Again.\n[00:01:00]\nAlice: Timed."

    turns = parse_transcript(text)

    assert turns == [
        Turn(None, None, "Meeting notes, 3 May"),  # before any speaker: a turn of its own
        Turn("Alice", None, "Hello there. Still me."),
        Turn("Bob", None, "Hi. Again."),  # consecutive lines of one speaker merge
        Turn("Alice", 60.0, "Timed."),  # a timestamp alone on its line dates the next turn
    ]


def test_unstructured_text_is_kept_as_written() -> None:
    text = "\ufeffA title\r\n\r\n\r\n\r\nFirst paragraph,\r\nwrapped.   \r\n\r\nSecond paragraph.\r\n"

    assert normalize_transcript(text) == "A title\n\nFirst paragraph,\nwrapped.\n\nSecond paragraph."


def test_empty_text() -> None:
    assert parse_transcript("") == []
    assert normalize_transcript("  \n") == ""


# --- SRT --------------------------------------------------------------------


SRT_DETAILS = (
    "\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Alice:</i> first line\r\nsecond line\r\n\r\n"
    "2\r\n00:00:03,000 --> 00:00:04,000 X1:100 X2:200\r\nAlice: more &amp; more {\\an8}\r\n\r\n"
    "00:00:05,000 --> 00:00:06,000\r\n<font color=\"red\">Bob</font>: 3 < 5 {laugh}\r\n"
    "3\r\n00:00:07.5 --> 00:00:08,000\r\nno name\r\n"
)


def test_a_broken_timestamp_in_a_real_file_is_found() -> None:
    lines = read("ES2009b.srt").split("\n")
    assert "-->" in lines[401]
    lines[401] = lines[401].replace(",", ";", 1)

    with pytest.raises(TranscriptError, match=r"^Malformed SRT at line 402: expected a timestamp line like"):
        parse_transcript("\n".join(lines))


# --- WebVTT -----------------------------------------------------------------


VTT_DETAILS = (
    "WEBVTT - a meeting\nKind: captions\nLanguage: en\n\n"
    "STYLE\n::cue { color: yellow }\n\n"
    "REGION\nid:left width:40%\n\n"
    "NOTE this cue was\nchecked by hand\n\n"
    "intro\n00:01.000 --> 00:02.500 align:start position:10%\n<v.loud Alice>Hi <b>there</b>,\n"
    "<c.yellow>all</c> &lt;3 <00:00:02.000>ok</v>\n\n"
    "2\n00:02.600 --> 00:04.000\n<v Alice>again &amp; again\n\n"
    "00:00:05.000 --> 00:00:06.000\n<v Bob>Yes.</v> <v Carol Ann>No.</v>\n\n"
    "00:00:07.000 --> 00:00:08.000\nDave: a name without a voice tag\n\n"
    "00:00:09.000 --> 00:00:10.000\n<v.first.loud Erin>Shout&nbsp;out</v>\n"
)


@pytest.mark.parametrize(
    "text, fmt, turns",
    [
        (SRT_DETAILS, "srt", [
            Turn("Alice", 1.0, "first line second line more & more"),
            Turn("Bob", 5.0, "3 < 5 {laugh}"),
            Turn(None, 7.5, "no name"),
        ]),
        (VTT_DETAILS, "vtt", [
            Turn("Alice", 1.0, "Hi there, all <3 ok again & again"),
            Turn("Bob", 5.0, "Yes."),
            Turn("Carol Ann", 5.0, "No."),
            Turn("Dave", 7.0, "a name without a voice tag"),
            Turn("Erin", 9.0, "Shout out"),
        ]),
        ("\ufeffWEBVTT\r\n\r\n00:00:01.000 --> 00:00:02.000\r\n<v Alice>Hi\r\n", "vtt", [Turn("Alice", 1.0, "Hi")]),
    ],
    ids=["srt", "vtt", "vtt-with-bom-and-crlf"],
)
def test_caption_details(text: str, fmt: str, turns: list[Turn]) -> None:
    assert detect_format(text) == fmt
    assert parse_transcript(text) == turns


# --- Malformed captions -----------------------------------------------------


# Each caption format's message starts with its name; SRT's also shows what a timestamp line looks like.
MALFORMED_CAPTIONS = {"srt": ("SRT", "00:00:01,000 --> 00:00:02,000"), "vtt": ("WebVTT", None)}


@pytest.mark.parametrize(
    "fmt, text, line",
    [
        ("srt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:00:03,000 -> 00:00:04,000\nThere\n", 6),
        ("srt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:00:03,000 --> 00:00:4,000\nThere\n", 6),
        ("srt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:61:03,000 --> 00:61:04,000\nThere\n", 6),
        ("srt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n\nsome garbage\nmore\n", 5),
        ("srt", "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n\n2\n", 6),
        ("srt", "1\nHi there\n", 2),
        ("vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHi\n\n00:00:03.000 --> 00:00:0x.000\nThere\n", 6),
        ("vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHi\n\ncue-2\nnot a timing line\nThere\n", 7),
        ("vtt", "WEBVTT\n\nid\n00:01.000 --> 00:99.000\nHi\n", 4),
        ("vtt", "Hello\n\n00:00:01.000 --> 00:00:02.000\nHi\n", 1),
    ],
)
def test_malformed_captions_name_the_line(fmt: str, text: str, line: int) -> None:
    name, example = MALFORMED_CAPTIONS[fmt]
    with pytest.raises(TranscriptError) as raised:
        parse_transcript(text, fmt)

    assert raised.value.line == line
    assert str(raised.value).startswith(f"Malformed {name} at line {line}: expected ")
    if example is not None:
        assert example in str(raised.value)


def test_unknown_format() -> None:
    with pytest.raises(TranscriptError, match="Unknown transcript format 'docx'"):
        parse_transcript("hello", "docx")


# --- Merging ----------------------------------------------------------------


def test_consecutive_cues_of_a_speaker_merge_keeping_the_first_start() -> None:
    vtt = (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\n<v Alice>One.\n\n"
        "00:00:02.000 --> 00:00:03.000\n<v Alice>Two.\n\n"
        "00:00:03.000 --> 00:00:04.000\n<v Bob>Three.\n\n"
        "00:00:04.000 --> 00:00:05.000\n<v Alice>Four.\n\n"
        # Over MERGE_SPAN_SECONDS after "Four.": a new turn, with its own timestamp.
        "00:03:00.000 --> 00:03:01.000\n<v Alice>Five.\n"
    )

    assert parse_transcript(vtt) == [
        Turn("Alice", 1.0, "One. Two."),
        Turn("Bob", 3.0, "Three."),
        Turn("Alice", 4.0, "Four."),
        Turn("Alice", 180.0, "Five."),
    ]


def test_speakerless_cues_merge_into_paragraphs() -> None:
    srt = "".join(
        f"{n}\n00:00:{n:02d},000 --> 00:00:{n:02d},900\nline {n}\n\n" for n in range(1, 4)
    )

    assert parse_transcript(srt) == [Turn(None, 1.0, "line 1 line 2 line 3")]


# --- Segments ---------------------------------------------------------------


def test_segments() -> None:
    segments = [
        {"speaker": "Alice", "start": "00:00:01.5", "end": 3, "text": "Hi "},
        {"speaker": "Alice", "start": 3, "text": "there.\n"},
        {"speaker": "Bob", "start": "12.25", "text": "Hello."},
        {"speaker": "", "text": "anonymous"},
        {"text": "  another  "},
    ]

    turns = parse_segments(segments)

    assert turns == [
        Turn("Alice", 1.5, "Hi there."),
        Turn("Bob", 12.25, "Hello."),
        Turn(None, None, "anonymous"),
        Turn(None, None, "another"),  # untimed and speakerless: kept apart
    ]
    assert normalize_transcript(segments=segments) == (
        "[00:00:01] Alice: Hi there.\n[00:00:12] Bob: Hello.\nanonymous\nanother"
    )


@pytest.mark.parametrize(
    "segment, message",
    [
        ({"text": ""}, "segments[1]: text must be a non-empty string"),
        ({"text": "   "}, "segments[1]: text must be a non-empty string"),
        ({"speaker": "A"}, "segments[1]: text must be a non-empty string"),
        ({"text": "hi", "speaker": 7}, "segments[1]: speaker must be a string"),
        ({"text": "hi", "start": "soon"}, "segments[1]: start must be seconds"),
        ({"text": "hi", "start": True}, "segments[1]: start must be seconds"),
        ({"text": "hi", "start": -1}, "segments[1]: start must be seconds"),
        ({"text": "hi", "end": [1]}, "segments[1]: end must be seconds"),
        ({"text": "hi", "start": 5, "end": 2}, "segments[1]: end is before start"),
        ("hi", "segments[1]: expected an object"),
    ],
)
def test_invalid_segments_name_the_index(segment: object, message: str) -> None:
    with pytest.raises(TranscriptError) as raised:
        parse_segments([{"text": "fine"}, segment])

    assert str(raised.value).startswith(message)
    assert raised.value.index == 1


def test_segments_must_be_a_list() -> None:
    with pytest.raises(TranscriptError, match="segments must be a list"):
        parse_segments({"text": "hi"})  # type: ignore[arg-type]


def test_normalize_wants_text_or_segments() -> None:
    with pytest.raises(TranscriptError):
        normalize_transcript()
    with pytest.raises(TranscriptError):
        normalize_transcript("hi", segments=[{"text": "hi"}])


def test_render_turns() -> None:
    turns = [
        Turn("Alice", 3725.9, "Hello\nworld"),
        Turn(None, 0.0, "untitled"),
        Turn("Bob", None, "no time"),
        Turn(None, None, "bare"),
    ]

    assert render_turns(turns) == "[01:02:05] Alice: Hello world\n[00:00:00] untitled\nBob: no time\nbare"

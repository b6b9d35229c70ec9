"""YouTube links, caption tracks and direct media downloads, with no internet.

Caption handling runs on hand-made yt-dlp info/subtitle structures; downloads run against
a local server serving media made with ffmpeg, with its host:port allowlisted in the URL
guard (and refused when it is not).
"""

from __future__ import annotations

import pytest
from yt_dlp.utils import DownloadError, ExtractorError  # type: ignore[import-untyped]

from shared.clients.youtube import (
    fetch_media_url,
    fetch_video,
    fetch_youtube,
    is_youtube_url,
    map_ytdlp_error,
    parse_json3,
    parse_vtt,
    pick_caption_track,
    youtube_video_id,
)
from shared.config import Settings
from shared.jobs.errors import PermanentJobError, TransientJobError
from tests.fakes import free_port
from tests.fakes.media import MediaFiles, MediaServer, make_media

VIDEO_ID = "dQw4w9WgXcQ"
YOUTUBE_EXTS = ("json3", "srv1", "srv2", "srv3", "ttml", "srt", "vtt")


# ------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://www.youtube.com/watch?v={VIDEO_ID}", True),
        (f"https://youtube.com/watch?v={VIDEO_ID}&t=42s", True),
        (f"https://www.youtube.com/watch?v={VIDEO_ID}&list=PL0123456789", True),
        (f"http://m.youtube.com/watch?v={VIDEO_ID}", True),
        (f"https://youtu.be/{VIDEO_ID}", True),
        (f"https://youtu.be/{VIDEO_ID}?si=share-token", True),
        (f"https://www.youtube.com/shorts/{VIDEO_ID}", True),
        (f"https://www.youtube.com/embed/{VIDEO_ID}", True),
        (f"https://www.youtube.com/live/{VIDEO_ID}?feature=share", True),
        (f"  https://www.youtube.com/watch?v={VIDEO_ID}  ", True),
        (f"https://music.youtube.com/watch?v={VIDEO_ID}", False),
        ("https://www.youtube.com/playlist?list=PL0123456789", False),
        ("https://www.youtube.com/@SomeChannel", False),
        ("https://www.youtube.com/watch?v=tooshort", False),
        (f"https://www.youtube.com/watch?x={VIDEO_ID}", False),
        (f"https://youtube.com.evil.example/watch?v={VIDEO_ID}", False),
        (f"https://www.youtube.com@evil.example/watch?v={VIDEO_ID}", False),
        (f"https://youtube.com:8443/watch?v={VIDEO_ID}", False),
        (f"ftp://youtube.com/watch?v={VIDEO_ID}", False),
        ("https://youtu.be/", False),
        ("https://vimeo.com/76979871", False),
        ("not a url at all", False),
        ("http://[::1", False),
    ],
)
def test_youtube_url_recognition(url, expected):
    assert is_youtube_url(url) is expected
    assert (youtube_video_id(url) == VIDEO_ID) is expected


# ------------------------------------------------------------- caption tracks


def tracks(lang: str, exts=YOUTUBE_EXTS) -> list[dict]:
    return [
        {
            "ext": ext,
            "url": f"https://www.youtube.com/api/timedtext?v={VIDEO_ID}&lang={lang}&fmt={ext}",
            "name": lang,
        }
        for ext in exts
    ]


def info(subtitles=None, automatic=None, language=None) -> dict:
    result: dict = {"id": VIDEO_ID, "title": "Lecture", "duration": 600}
    if subtitles is not None:
        result["subtitles"] = {lang: tracks(lang) for lang in subtitles}
    if automatic is not None:
        result["automatic_captions"] = {lang: tracks(lang) for lang in automatic}
    if language is not None:
        result["language"] = language
    return result


@pytest.mark.parametrize(
    ("given", "lang", "kind"),
    [
        (info(subtitles=["de", "en"], automatic=["en-orig", "en"]), "en", "manual"),
        (info(subtitles=["de"], automatic=["en-orig", "en"], language="en"), "de", "manual"),
        (info(subtitles=["fr", "en-GB"]), "en-GB", "manual"),
        (info(subtitles=["ja", "fr"], language="fr"), "fr", "manual"),
        (info(subtitles=[], automatic=["en-orig", "en", "fr"]), "en-orig", "automatic"),
        (info(automatic=["de", "fr-orig", "fr", "en"], language="fr"), "fr-orig", "automatic"),
        (info(automatic=["de", "en"]), "en", "automatic"),
        (info(automatic=["pt"]), "pt", "automatic"),
        (info(automatic=["de", "fr"]), None, None),  # only machine translations
        (info(), None, None),
        (info(subtitles=[], automatic=[]), None, None),
    ],
)
def test_pick_caption_track(given, lang, kind):
    track = pick_caption_track(given)
    if lang is None:
        assert track is None
    else:
        assert track is not None
        assert (track.lang, track.kind, track.ext) == (lang, kind, "json3")
        assert f"lang={lang}&fmt=json3" in track.url


def test_pick_caption_track_skips_live_chat_and_unparseable_formats():
    given = {
        "subtitles": {
            "live_chat": [{"ext": "json", "url": "https://www.youtube.com/live_chat"}],
            "en": tracks("en", exts=("srt", "ttml")),
        },
        "automatic_captions": {"en": tracks("en", exts=("srv3", "vtt"))},
    }
    track = pick_caption_track(given)
    assert track is not None
    assert track[:2] == ("en", "vtt") and track.kind == "automatic"
    assert len(tuple(track)) == 4 and track[2].endswith("fmt=vtt")  # a plain tuple too


def test_pick_caption_track_reads_the_extension_from_the_url_when_missing():
    given = {"subtitles": {"en": [{"url": "http://example.test/captions/lecture.vtt"}]}}
    assert pick_caption_track(given) == (
        "en",
        "vtt",
        "http://example.test/captions/lecture.vtt",
        "manual",
    )


# ------------------------------------------------------------- caption parsing

YOUTUBE_AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.070 align:start position:0%
\x20
welcome<00:00:00.480><c> to</c><00:00:00.640><c> the</c><00:00:00.800><c> lecture</c>

00:00:02.070 --> 00:00:02.080 align:start position:0%
welcome to the lecture
\x20

00:00:02.080 --> 00:00:04.630 align:start position:0%
welcome to the lecture
today<00:00:02.400><c> we</c><00:00:02.560><c> study</c><00:00:02.960><c> plants</c>

00:00:04.630 --> 00:00:04.640 align:start position:0%
today we study plants
\x20
"""

MANUAL_VTT = """\ufeffWEBVTT

NOTE written by hand

STYLE
::cue { color: white }

intro
00:00:01.000 --> 00:00:03.500
<v Teacher>Photosynthesis &amp; respiration</v>
are two sides of one coin.

01:02:03.250 --> 01:02:05,000
Late in the lecture.
"""


def test_parse_vtt_removes_youtube_rolling_repeats():
    segments = parse_vtt(YOUTUBE_AUTO_VTT)
    assert [(s.text, s.start_s, s.end_s) for s in segments] == [
        ("welcome to the lecture", 0.16, 2.07),
        ("today we study plants", 2.08, 4.63),
    ]


def test_parse_vtt_manual_captions():
    segments = parse_vtt(MANUAL_VTT)
    assert [(s.text, s.start_s, s.end_s) for s in segments] == [
        ("Photosynthesis & respiration are two sides of one coin.", 1.0, 3.5),
        ("Late in the lecture.", 3723.25, 3725.0),
    ]
    assert parse_vtt("WEBVTT\n\n") == []


def test_parse_json3():
    data = {
        "wireMagic": "pb3",
        "events": [
            {"tStartMs": 0, "dDurationMs": 5000, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1},
            {
                "tStartMs": 160,
                "dDurationMs": 4470,
                "wWinId": 1,
                "segs": [{"utf8": "welcome"}, {"utf8": " to", "tOffsetMs": 320}],
            },
            {"tStartMs": 2070, "dDurationMs": 10, "aAppend": 1, "segs": [{"utf8": "\n"}]},
            {"tStartMs": 2080, "dDurationMs": 2550, "segs": [{"utf8": "the\nlecture"}]},
        ],
    }
    segments = parse_json3(data)
    assert [(s.text, s.start_s, s.end_s) for s in segments] == [
        ("welcome to", 0.16, 4.63),
        ("the lecture", 2.08, 4.63),
    ]
    assert parse_json3('{"events": []}') == []


# ------------------------------------------------------------ yt-dlp errors


@pytest.mark.parametrize(
    ("message", "kind", "says"),
    [
        ("Private video. Sign in if you've been granted access to this video", "P", "private"),
        ("Sign in to confirm your age. This video may be inappropriate", "P", "age-restricted"),
        ("Video unavailable. This video has been removed by the uploader", "P", "unavailable"),
        ("This video is no longer available due to a copyright claim", "P", "copyright"),
        ("The uploader has not made this video available in your country", "P", "region"),
        ("Join this channel to get access to members-only content", "P", "members"),
        ("This live event will begin in 3 hours.", "P", "not been published"),
        ("Unsupported URL: https://example.com/", "P", "not a video"),
        ("Sign in to confirm you\u2019re not a bot", "T", "retry"),
        ("Unable to download webpage: HTTP Error 429: Too Many Requests", "T", "retry"),
        ("Unable to download webpage: HTTP Error 503: Service Unavailable", "T", "retry"),
        ("Unable to download webpage: The read operation timed out", "T", "retry"),
        ("Something nobody has seen before", "P", "could not be fetched"),
    ],
)
def test_ytdlp_errors_are_mapped_for_learners(message, kind, says):
    error = DownloadError(
        f"ERROR: [youtube] {VIDEO_ID}: {message}",
        (ExtractorError, ExtractorError(message, expected=True), None),
    )
    mapped = map_ytdlp_error(error)
    assert isinstance(mapped, PermanentJobError if kind == "P" else TransientJobError)
    assert says in str(mapped)
    assert "ERROR" not in str(mapped) and "Traceback" not in str(mapped)


# ------------------------------------------------------------ downloads


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> MediaFiles:
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def server(media):
    with MediaServer(media.root) as running:
        yield running


def settings_for(tmp_path, allow: list[str], **overrides) -> Settings:
    values = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "fetch_allowlist": allow,
        "fetch_timeout_seconds": 5.0,
    } | overrides
    return Settings(**values)


async def test_fetch_media_url_downloads_the_file(tmp_path, server, media):
    dest = tmp_path / "uploads" / "media"
    path = await fetch_media_url(
        server.url("tone.mp3"), dest, settings_for(tmp_path, [server.host_port])
    )
    assert path.parent == dest and path.suffix == ".mp3"
    assert path.stem != "tone" and len(path.stem) == 32  # a generated name
    assert path.read_bytes() == media.mp3.read_bytes()
    assert [p.name for p in dest.iterdir()] == [path.name]  # no partial files left


async def test_fetch_media_url_refuses_a_local_address_not_allowlisted(tmp_path, server):
    before = server.hits("tone.mp3")
    with pytest.raises(PermanentJobError, match="private network"):
        await fetch_media_url(server.url("tone.mp3"), tmp_path / "out", settings_for(tmp_path, []))
    assert server.hits("tone.mp3") == before


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:{other}/tone.mp3"],
)
async def test_fetch_media_url_refuses_a_redirect_to_a_refused_address(tmp_path, server, target):
    target = target.format(other=free_port())
    url = f"http://{server.host_port}/redirect?to={target}"
    with pytest.raises(PermanentJobError, match=r"private network|not a public"):
        await fetch_media_url(url, tmp_path / "out", settings_for(tmp_path, [server.host_port]))


async def test_fetch_media_url_limits_and_statuses(tmp_path, server):
    settings = settings_for(tmp_path, [server.host_port])
    small = settings_for(tmp_path, [server.host_port], max_fetch_bytes=1000)
    with pytest.raises(PermanentJobError, match="larger than"):
        await fetch_media_url(server.url("tone.mp3"), tmp_path / "out", small)
    with pytest.raises(PermanentJobError, match="HTTP 404"):
        await fetch_media_url(server.url("missing.mp3"), tmp_path / "out", settings)
    with pytest.raises(TransientJobError):
        await fetch_media_url(f"http://{server.host_port}/status/503", tmp_path / "out", settings)
    with pytest.raises(PermanentJobError, match="http"):
        await fetch_media_url("file:///etc/passwd", tmp_path / "out", settings)
    assert not list((tmp_path / "out").glob("*"))


async def test_ytdlp_generic_extractor_downloads_local_audio_behind_the_guard(
    tmp_path, server, media
):
    dest = tmp_path / "uploads" / "media"
    fetched = await fetch_video(
        server.url("tone.mp3"),
        dest,
        settings_for(tmp_path, [server.host_port]),
        extractors=["generic"],
    )
    assert fetched.path_taken == "audio" and fetched.segments is None
    assert fetched.audio_path is not None and fetched.audio_path.parent == dest
    assert fetched.audio_path.read_bytes() == media.mp3.read_bytes()


async def test_ytdlp_takes_captions_without_downloading_the_video(tmp_path, server):
    before = server.hits("lecture.mp4")
    fetched = await fetch_video(
        server.url("lecture.html"),
        tmp_path / "out",
        settings_for(tmp_path, [server.host_port]),
        extractors=["generic", "html5"],
    )
    assert fetched.path_taken == "captions" and fetched.audio_path is None
    assert fetched.caption_lang == "en"
    assert fetched.segments is not None
    assert " ".join(s.text for s in fetched.segments) == (
        "Photosynthesis turns light into sugar. Chlorophyll absorbs red & blue light."
    )
    assert fetched.segments[0].start_s == 0.0 and fetched.segments[-1].end_s == 3.0
    assert server.hits("lecture.mp4") == before
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


async def test_ytdlp_is_refused_a_local_address_not_allowlisted(tmp_path, server):
    before = server.hits("tone.mp3")
    with pytest.raises(PermanentJobError, match="private network"):
        await fetch_video(
            server.url("tone.mp3"),
            tmp_path / "out",
            settings_for(tmp_path, []),
            extractors=["generic"],
        )
    assert server.hits("tone.mp3") == before
    assert not list((tmp_path / "out").glob("*"))


async def test_fetch_youtube_refuses_other_links(tmp_path):
    with pytest.raises(PermanentJobError, match="not a link to a YouTube video"):
        await fetch_youtube("https://vimeo.com/76979871", tmp_path, settings_for(tmp_path, []))

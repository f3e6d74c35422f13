"""Fuzz the file-name and file-mode parsers of exports (issue #12, items 12 and 13): whatever
the id (a camera, grant or incident id from the store, possibly hostile) or the
``CAMGATE_FILE_MODE`` text, camgate gives a name inside the output folder or its own clear
error — never a path outside it, another exception type, or a mode it did not allow."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from camgate.errors import ConfigError, ValidationError
from camgate.media.files import FILE_MODE_ENV, dir_mode, file_mode, inside, safe_name
from hypothesis import example, given, settings
from hypothesis import strategies as st

_FOLDER = Path(tempfile.gettempdir()) / "camgate-fuzz-out"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ids = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["..", ".", "/", "../../escaped", "/etc/passwd", "a/../../b", "~", ".x"]),
    st.lists(st.sampled_from(["..", "/", ".", "a", "\\", "\0", "é"]), max_size=12).map("".join),
)


@settings(max_examples=400)
@given(camera=ids, grant=ids)
@example(camera="", grant="0.")  # "id-…-0." + ".jpg": a plain id ending in "." made ".."
def test_a_name_from_any_id_stays_in_the_folder(camera: str, grant: str) -> None:
    name = f"{safe_name(camera)}-{safe_name(grant)}.jpg"
    assert _NAME.match(name) and "/" not in name and ".." not in name.replace("...", "")
    assert inside(_FOLDER, name).parent == _FOLDER


@settings(max_examples=300)
@given(a=ids, b=ids)
def test_two_ids_never_share_a_name(a: str, b: str) -> None:
    if a != b:
        assert safe_name(a) != safe_name(b) or not (_NAME.match(a) and ".." not in a)


@settings(max_examples=300)
@given(name=st.text(max_size=40))
def test_inside_refuses_any_name_that_leaves(name: str) -> None:
    try:
        path = inside(_FOLDER, name)
    except ValidationError as exc:
        message = str(exc)
        assert "would leave" in message
    else:
        assert path.resolve().parent == _FOLDER.resolve()


@settings(max_examples=300)
@given(text=st.text(max_size=12))
def test_any_file_mode_text_gives_a_private_enough_mode_or_a_clear_error(text: str) -> None:
    if "\0" in text or "\ud800" <= max(text, default="a") <= "\udfff":
        return  # not a value an environment can hold
    os.environ[FILE_MODE_ENV] = text
    try:
        mode = file_mode()
    except ConfigError as exc:
        message = str(exc)
        assert FILE_MODE_ENV in message
    else:
        assert mode & 0o600 == 0o600 and not mode & ~0o666
        assert dir_mode(mode) & 0o700 == 0o700 and not dir_mode(mode) & ~0o777
    finally:
        del os.environ[FILE_MODE_ENV]

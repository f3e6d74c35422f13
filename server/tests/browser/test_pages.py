"""The owner portal and the operator console in a real browser (Debian's Chromium).

The story runs in two browser contexts at once, an owner's and an officer's, against one
server: everything either sees comes through the pages polling the JSON API.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from camgate.testing import read_picture_clock
from camgate_server.policy import Role

from ..conftest import CENTRE, PASSWORD
from .conftest import AXE, WAIVER, Site

#: The site's cameras stream from a real GStreamer RTSP server.
pytestmark = pytest.mark.rtsp

#: How long an expectation waits for the page (a page sees what the other person did at its
#: next poll, every 1.5 s; a busy machine is slower): a ceiling, never a sleep.
SEEN_MS = 20_000
_SERIOUS = """async () => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}"""


#: The picture a <video> shows now, as its brightness (canvas pixels, Rec. 601 luma), and how
#: many pictures the browser has decoded so far.
_PICTURE = """(video) => {
  const frames = video.getVideoPlaybackQuality().totalVideoFrames;
  if (!video.videoWidth) return {width: 0, frames};
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const luma = new Array(canvas.width * canvas.height);
  for (let i = 0; i < luma.length; i++) {
    luma[i] = Math.round(0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2]);
  }
  return {width: canvas.width, height: canvas.height, luma, frames};
}"""


def shown(video: Any) -> tuple[int, datetime | None]:
    """How many pictures ``video`` (a locator) has decoded, and the picture clock of the one
    it shows now (None while it shows none that carries one)."""
    import numpy as np

    got = video.evaluate(_PICTURE)
    if not got["width"]:
        return got["frames"], None
    luma = np.array(got["luma"], dtype=np.uint8).reshape(got["height"], got["width"])
    return got["frames"], read_picture_clock(luma)


def playing(video: Any, after: tuple[int, datetime | None] = (0, None)) -> tuple[int, datetime]:
    """Wait (at most SEEN_MS) until ``video`` has decoded more than 5 pictures past ``after``
    and shows a picture clock later than ``after``'s; that state."""
    deadline = time.monotonic() + SEEN_MS / 1000
    frames, clock = after
    while True:
        now = shown(video)
        if now[1] is not None and now[0] > frames + 5 and (clock is None or now[1] > clock):
            return now[0], now[1]
        assert time.monotonic() < deadline, f"the video does not play: {now} after {after}"
        video.page.wait_for_timeout(50)


def greys(png: bytes) -> Any:
    """A PNG screenshot's brightness as a 2-D numpy array (decoded by FFmpeg, through PyAV)."""
    with av.open(io.BytesIO(png), format="png_pipe") as container:
        return next(iter(container.decode(video=0))).to_ndarray(format="gray")


def report(officer: Any, scope: str = "Live view") -> None:
    """The officer reports a burglary at the centre, asking for ``scope``."""
    officer.get_by_label("Latitude").fill(str(CENTRE.lat))
    officer.get_by_label("Longitude").fill(str(CENTRE.lon))
    officer.get_by_label("Access wanted").select_option(label=scope)
    officer.get_by_role("button", name="Report and show cameras").click()


#: A scope's words on the console's buttons: (asking for it, downloading it).
_WORDS = {
    "snapshot": ("a snapshot", "the snapshot"),
    "recorded": ("recorded video", "the recorded video"),
}


def download(officer: Any, camera: str, scope: str) -> tuple[Any, Any]:
    """The officer asks for ``scope`` of ``camera`` from the map (its owner pre-authorised
    it) and downloads it: the request's item and the grid's tile, once it is done."""
    from playwright.sync_api import expect

    asking, getting = _WORDS[scope]
    officer.get_by_role("button", name=f"Request {asking} of {camera}").click()
    mine = officer.locator(f"#requests li[data-camera={camera}]")
    expect(mine).to_have_attribute("data-status", "granted")
    mine.get_by_role("button", name=f"Download {getting} of camera {camera}").click()
    tile = officer.locator(f"#media li[data-key^={scope}-]")
    expect(tile).to_have_attribute("data-state", "done")
    return mine, tile


#: The pages' fallback poll in these tests: longer than any test, so news comes by events.
NO_POLL_MS = 3_600_000


def person(browser: Any, site: Site) -> Any:
    """A fresh browser context (its own cookies) on the site, with axe-core ready in every page
    (an init script: the pages' Content-Security-Policy allows no inline script). The pages'
    fallback poll is set to an hour: every change a page shows after it loaded came by the
    server-sent events (GET /events), or by the page's own action."""
    from playwright.sync_api import expect

    expect.set_options(timeout=SEEN_MS)
    context = browser.new_context(base_url=site.url)
    context.add_init_script(path=str(AXE))
    context.add_init_script(script=f"window.CAMGATE_POLL_MS = {NO_POLL_MS};")
    return context


def sign_in(context: Any, username: str, then: str) -> Any:
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"**{then}")
    return page


def tab_to(page: Any, target: Any, presses: int = 60) -> None:
    """Reach ``target`` with the Tab key alone (it is in the keyboard's order), from the top."""
    page.locator("body").focus()
    handle = target.element_handle()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(el) => document.activeElement === el", handle):
            return
    raise AssertionError(f"Tab never reached {target}")


def csrf_watch(context: Any) -> list[str]:
    """Every state-changing request the context's pages send without an X-CSRF-Token (but the
    two made before a session exists: signing in and accepting an invitation)."""
    missing: list[str] = []
    exempt = {("POST", "/session"), ("POST", "/invites/accept")}

    def seen(request: Any) -> None:
        path = "/" + request.url.split("/", 3)[3].split("?")[0]
        changes = request.method != "GET" and (request.method, path) not in exempt
        if changes and not request.headers.get("x-csrf-token"):
            missing.append(f"{request.method} {path}")

    context.on("request", seen)
    return missing


def console_errors(context: Any) -> list[str]:
    """Every error the context's pages log (a script error, a CSP violation, a failed load)."""
    errors: list[str] = []

    def logged(message: Any) -> None:
        # The sign-in page asks GET /session whether someone is signed in: 401 is its "no".
        if message.type == "error" and "status of 401" not in message.text:
            errors.append(f"{message.text} ({message.location.get('url')})")

    context.on("console", logged)
    context.on("weberror", lambda e: errors.append(str(e.error)))
    return errors


def console_page(browser: Any, site: Site) -> tuple[Any, list[str], Any]:
    """A new officer's context (its console errors watched) and their console page."""
    context = person(browser, site)
    errors = console_errors(context)
    return context, errors, sign_in(context, "officer", "/console")


def accessible(page: Any, artefacts: Path, name: str) -> None:
    """No serious or critical axe-core violation (WCAG 2.1 A and AA rules); a screenshot."""
    page.screenshot(path=str(artefacts / f"{name}.png"), full_page=True)
    assert page.evaluate(_SERIOUS) == [], name


def test_the_story_owner_and_officer(browser: Any, site: Site, artefacts: Path) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    owner_ctx, officer_ctx = person(browser, site), person(browser, site)
    # Lists the contexts' handlers fill as the story goes.
    unguarded = [csrf_watch(owner_ctx), csrf_watch(officer_ctx)]
    errors = [console_errors(owner_ctx), console_errors(officer_ctx)]

    # The owner opens the invitation link, makes an account, lands on the portal.
    owner = owner_ctx.new_page()
    owner.goto(f"/invite#{site.invite}")
    accessible(owner, artefacts, "invite")
    owner.get_by_label("Username").fill("carol")
    owner.get_by_label("Password").fill(PASSWORD)
    owner.get_by_role("button", name="Create my account").click()
    owner.wait_for_url("**/portal")
    # The waiver, its version and its SHA-256 are shown; ask-first is chosen; accepted.
    expect(owner.locator("#waiver-version")).to_have_text(WAIVER.version)
    expect(owner.locator("#waiver-sha256")).to_have_text(WAIVER.sha256)
    expect(owner.locator("#waiver-text")).to_contain_text("only on my terms")
    expect(owner.get_by_label("c1")).to_be_checked()
    owner.get_by_label("Ask me first, every time").check()
    owner.get_by_label("I have read the waiver above and accept it").check()
    owner.get_by_role("button", name="Accept the waiver and save my terms").click()
    row = owner.locator("#cameras tr[data-camera=c1]")
    expect(row).to_contain_text("Ask first")
    expect(row).to_contain_text(WAIVER.version)
    accessible(owner, artefacts, "portal")

    # The officer reports an incident nearby and sees the map: c1 asks its owner, e1 refused.
    officer = sign_in(officer_ctx, "officer", "/console")
    officer.get_by_label("Latitude").fill(str(CENTRE.lat))
    officer.get_by_label("Longitude").fill(str(CENTRE.lon))
    officer.get_by_label("Radius (metres)").fill("300")
    officer.get_by_role("button", name="Report and show cameras").click()
    c1 = officer.locator("#survey tr[data-camera=c1]")
    expect(c1).to_have_attribute("data-outcome", "ask")
    expect(officer.locator("#survey tr[data-camera=e1]")).to_have_attribute(
        "data-outcome", "denied"
    )
    accessible(officer, artefacts, "console-map")
    c1.get_by_role("button", name="Request live view of c1").click()
    mine = officer.locator("#requests li[data-camera=c1]")
    expect(mine).to_have_attribute("data-status", "waiting")
    expect(mine).to_contain_text("Waiting for the owner")

    # The owner's page shows the request with its countdown; the owner says yes.
    asked = owner.locator("#pending li")
    expect(asked).to_contain_text("Camera c1")
    countdown = asked.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^[0-4]:\d\d$"))  # 5 min to answer
    expect(countdown).not_to_have_text(countdown.text_content() or "")  # counting down
    accessible(owner, artefacts, "portal-asked")
    yes = asked.get_by_role("button", name="Yes, allow camera c1")
    tab_to(owner, yes)  # the keyboard alone answers
    owner.keyboard.press("Enter")
    expect(owner.locator("#pending-empty")).to_be_visible()

    # The officer's page shows the grant, and plays its live video: the browser decodes
    # pictures, and the clock the camera burnt into them advances.
    expect(mine).not_to_have_attribute("data-status", "waiting")
    assert mine.get_attribute("data-status") == "granted", mine.inner_text()
    expect(mine).to_contain_text("Granted until")
    mine.get_by_role("button", name="Watch camera c1").click()
    tile = officer.locator("#media li[data-key^=live-]")
    video = tile.locator("video")
    first = playing(video)
    later = playing(video, first)
    assert (later[1] - first[1]).total_seconds() > 0
    expect(tile.locator(".media-status")).to_have_text("Live.")
    expect(mine.get_by_role("button", name="Watch camera c1")).to_have_count(0)  # once
    accessible(officer, artefacts, "console-live")

    # The owner's history has the access; one button revokes.
    expect(owner.locator("#history tr[data-outcome=granted]")).to_contain_text("c1")
    tab_to(owner, owner.get_by_role("button", name="Stop sharing all my cameras now"))
    # When the officer's video stops (the page's own clock: the same machine's).
    tile.evaluate(
        """(tile) => { window.stoppedAt = new Promise((resolve) => new MutationObserver(() => {
             if (tile.dataset.state === "ended") resolve(Date.now()); })
           .observe(tile, {attributes: true})); }"""
    )
    clicked = time.time()
    owner.keyboard.press("Enter")
    expect(owner.locator("#revocations")).to_contain_text("c1")
    expect(owner.locator("#cameras tr[data-camera=c1]")).to_contain_text("No")
    accessible(owner, artefacts, "portal-revoked")

    # The officer's video stops with the reason; the request shows that it ended, and why.
    expect(tile.locator(".media-status")).to_contain_text("Stopped: the owner revoked consent")
    stopped_s = officer.evaluate("window.stoppedAt") / 1000 - clicked
    assert video.evaluate("(v) => v.readyState") == 0  # no picture is shown any more
    expect(mine).to_have_attribute("data-status", "ended")
    expect(mine).to_contain_text("Ended: the owner revoked consent")
    accessible(officer, artefacts, "console-ended")
    print(f"revoke click to the officer's video stopped: {stopped_s * 1000:.0f} ms")
    assert unguarded == [[], []]  # every state-changing fetch carried the CSRF token
    assert errors == [[], []]  # no script error, no CSP violation, no failed load
    owner_ctx.close()
    officer_ctx.close()
    print(f"story: {time.monotonic() - started:.1f} s")


def test_a_refused_camera_shows_its_reasons_on_the_map(
    browser: Any, site: Site, artefacts: Path
) -> None:
    from playwright.sync_api import expect

    context, errors, officer = console_page(browser, site)
    report(officer)
    # The refused camera's marker, reached by keyboard, opens its reasons in words.
    marker = officer.get_by_role("button", name="Camera e1: refused")
    marker.focus()
    marker.press("Enter")
    popup = officer.locator(".leaflet-popup .popup[data-camera=e1]")
    expect(popup).to_contain_text("refused")
    expect(popup.locator(".reasons li").first).to_contain_text("live")
    # The same reasons are in the table, and there is no request button for it.
    row = officer.locator("#survey tr[data-camera=e1]")
    expect(row.locator(".reasons li").first).to_contain_text("live")
    expect(row.get_by_role("button")).to_have_count(0)
    officer.screenshot(path=str(artefacts / "console-refused-popup.png"))
    assert errors == []  # Leaflet runs under the pages' CSP without a violation
    context.close()


def test_an_owner_reaches_only_their_own(browser: Any, site: Site, artefacts: Path) -> None:
    from playwright.sync_api import expect

    context = person(browser, site)
    dave = sign_in(context, "dave", "/portal")
    expect(dave.locator("#cameras tr[data-camera=d1]")).to_contain_text("Ask first")
    expect(dave.locator("#cameras tr")).to_have_count(1)  # not c1 nor e1
    # Another owner's camera does not exist for dave; the console is not for owners.
    status = dave.evaluate("async () => (await fetch('/cameras/c1')).status")
    assert status == 404
    answer = dave.goto("/console")
    assert answer is not None and answer.status == 403
    expect(dave.get_by_role("heading", level=1)).to_have_text("This page is not for your account")
    accessible(dave, artefacts, "forbidden")
    context.close()


def test_an_officer_cannot_approve(browser: Any, site: Site) -> None:
    context = person(browser, site)
    officer = sign_in(context, "officer", "/console")
    # A request held for dave (ask-first), made through the API with the page's session.
    held = officer.evaluate(
        """async ([lat, lon]) => {
          await loadSession();
          const made = await api("POST", API.incidents,
            {kind: "burglary", lat, lon, radius_m: 300});
          const asked = await api("POST", API.requests(made.id),
            {camera: "d1", scope: "live", duration_s: 60});
          try { await api("POST", API.answer(asked.request), {approve: true}); return "approved"; }
          catch (e) { return [asked.status, e.status, e.problem.error]; }
        }""",
        [CENTRE.lat, CENTRE.lon],
    )
    assert held == ["waiting", 403, "Forbidden"]
    assert [p.camera_id for p in site.gate.pending("dave")] == ["d1"]  # still waiting
    answer = officer.goto("/portal")
    assert answer is not None and answer.status == 403
    context.close()


def test_signed_out_pages_send_you_to_sign_in(browser: Any, site: Site, artefacts: Path) -> None:
    context = person(browser, site)
    page = context.new_page()
    page.goto("/portal")
    assert page.url.endswith("/?next=/portal")
    accessible(page, artefacts, "sign-in")
    # ?next= leads only to a path on this server, never to another host.
    page.goto("/?next=//example.org/phish")
    page.get_by_label("Username").fill("officer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/console")
    context.close()


@pytest.mark.parametrize("path", ["/", "/portal", "/console", "/invite"])
def test_every_page_has_a_strict_content_security_policy(site: Site, path: str) -> None:
    import httpx

    answer = httpx.get(site.url + path, follow_redirects=False)
    if path in ("/portal", "/console"):
        assert answer.status_code == 303
        return
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


def test_an_invitation_works_once(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    code, _ = site.accounts.create_invite("erin", site.admin)
    context = person(browser, site)
    page = context.new_page()
    for attempt in ("erin", "erin2"):
        page.goto(f"/invite#{code}")
        assert page.url.endswith("/invite")  # the code is out of the address bar at once
        page.get_by_label("Username").fill(attempt)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create my account").click()
        if attempt == "erin":
            page.wait_for_url("**/portal")
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(f"{site.url}/")
    expect(page.locator("#accept-error")).to_have_text(
        "This invitation was used already or has expired. Ask for a new one."
    )
    context.close()


def test_a_grid_of_cameras_and_a_masked_cameras_video_shows_the_mask(
    browser: Any, site: Site, artefacts: Path
) -> None:
    from playwright.sync_api import expect

    context, errors, officer = console_page(browser, site)
    report(officer)
    for camera in ("m1", "g1"):  # frank pre-authorised live: granted at once
        officer.get_by_role("button", name=f"Request live view of {camera}").click()
        mine = officer.locator(f"#requests li[data-camera={camera}]")
        expect(mine).to_have_attribute("data-status", "granted")
        mine.get_by_role("button", name=f"Watch camera {camera}").click()
    # Both play at once, side by side in the grid.
    tiles = officer.locator("#media li")
    expect(tiles).to_have_count(2)
    clock = tiles.filter(has_text="Camera g1").locator("video")
    playing(clock, playing(clock))
    video = tiles.filter(has_text="Camera m1").locator("video")
    deadline = time.monotonic() + SEEN_MS / 1000
    while shown(video)[0] < 10:
        assert time.monotonic() < deadline, "the masked camera's video does not play"
        officer.wait_for_timeout(50)
    officer.screenshot(path=str(artefacts / "console-grid.png"), full_page=True)
    # frank's mask covers the top-left quarter: black there, colour bars beside it.
    png = video.screenshot()
    (artefacts / "console-live-masked.png").write_bytes(png)
    grey = greys(png)
    height, width = grey.shape
    assert int(grey[4 : height // 2 - 4, 4 : width // 2 - 4].max()) <= 32, "masked"
    assert int(grey[4 : height // 2 - 4, width // 2 + 4 : -4].max()) > 100, "the picture"
    assert errors == []
    context.close()


def test_a_snapshot_downloads_from_the_console(browser: Any, site: Site, artefacts: Path) -> None:
    from playwright.sync_api import expect

    context, errors, officer = console_page(browser, site)
    report(officer, "Snapshot")
    mine, tile = download(officer, "e1", "snapshot")  # erin pre-authorised snapshots
    picture = tile.get_by_role("img", name="Snapshot of camera e1")
    assert picture.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 320
    # Saved, the file is the JPEG whose SHA-256 the audit log recorded.
    with officer.expect_download() as saving:
        tile.get_by_role("link", name=re.compile(r"^Save e1-.*\.jpg$")).click()
    jpeg = Path(saving.value.path()).read_bytes()
    digest = hashlib.sha256(jpeg).hexdigest()
    expect(tile.locator(".media-status")).to_contain_text(digest)
    assert digest in [r.body.get("sha256") for r in site.gate.audit.records("access.end")]
    expect(mine.get_by_role("button")).to_have_count(0)  # a grant is redeemed once
    accessible(officer, artefacts, "console-snapshot")
    assert errors == []
    context.close()


def test_an_owner_checks_their_audit_slice_in_the_page(
    browser: Any, site: Site, artefacts: Path, tmp_path: Path
) -> None:
    """The portal checks the owner's slice itself (slice.js: signatures, Merkle proof, each
    record's hash and the owner's chain); the same file saved, then edited, fails."""
    from playwright.sync_api import expect

    context = person(browser, site)
    errors = console_errors(context)
    owner = sign_in(context, "dave", "/portal")
    owner.get_by_role("button", name="Download and check my audit record").click()
    result = owner.locator("#slice-result")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_contain_text("Verified: ")
    accessible(owner, artefacts, "portal-audit")
    with owner.expect_download() as saved:
        owner.get_by_role("link", name="Save my audit record").click()
    answer = json.loads(Path(saved.value.path()).read_text(encoding="utf-8"))
    assert answer["verified"]["ok"] is True  # the server's own check agrees
    piece = answer["slice"]
    assert piece["owner"] == "dave" and piece["records"]

    def check(name: str, data: dict[str, Any]) -> Any:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")  # not canonical: re-read
        owner.get_by_label("Check a saved audit record").set_input_files(str(path))
        return result

    expect(check("as-saved", piece)).to_contain_text("Verified: ")
    edited = copy.deepcopy(piece)
    edited["records"][0]["body"]["owner"] = "someone else"
    expect(check("edited", edited)).to_have_text(
        f"FAILED: record {piece['records'][0]['seq']}: its content does not match its hash."
    )
    expect(result).to_have_attribute("data-ok", "false")
    dropped = copy.deepcopy(piece)
    dropped["records"].pop()
    expect(check("dropped", dropped)).to_contain_text("FAILED: the records do not end at")
    forged = copy.deepcopy(piece)
    forged["end"]["payload"]["seq"] += 1
    expect(check("forged", forged)).to_contain_text("signature does not verify")
    assert errors == []
    context.close()


def test_the_admin_and_auditor_page(browser: Any, site: Site, artefacts: Path) -> None:
    """An admin reads owners and the rules, publishes a waiver and invites an owner (from the
    keyboard), and sees the report's charts; an auditor reads the same but cannot publish
    (the form is not offered, and the API refuses it); an operator cannot open the page."""
    from playwright.sync_api import expect

    context = person(browser, site)
    errors = console_errors(context)
    unguarded = csrf_watch(context)
    admin = sign_in(context, "admin", "/console")
    admin.goto("/admin")
    expect(admin.locator("#owners tr[data-owner=dave]")).to_contain_text("Dave")
    expect(admin.locator("#accounts tr[data-username=officer]")).to_contain_text("operator")
    expect(admin.locator("#accounts tr[data-username=dave]")).to_contain_text("owner")
    expect(admin.locator("#rules")).to_contain_text("investigation")
    expect(admin.locator(f"#waivers li[data-version='{WAIVER.version}']")).to_contain_text(
        WAIVER.sha256
    )
    accessible(admin, artefacts, "admin")

    admin.get_by_label("Version").fill("2027-1")
    admin.get_by_label("Text").fill("A newer waiver.")
    tab_to(admin, admin.get_by_role("button", name="Publish this waiver"))
    admin.keyboard.press("Enter")
    expect(admin.locator("#waivers li[data-version='2027-1']")).to_contain_text("A newer waiver.")
    assert site.gate.store.get_waiver("2027-1").text == "A newer waiver."

    admin.get_by_label("Owner id").fill("gina")
    admin.get_by_label("Name", exact=True).fill("Gina")
    admin.get_by_role("button", name="Register and make an invitation link").click()
    expect(admin.locator("#invite-link")).to_contain_text(f"{site.url}/invite#")
    expect(admin.locator("#owners tr[data-owner=gina]")).to_contain_text("Gina")

    admin.get_by_role("button", name="Show the report").click()
    chart = admin.locator("svg[data-table=requests]")
    expect(chart).to_have_attribute("role", "img")
    columns = admin.locator("table[data-table=requests] thead th").count() - 2
    assert columns > 0 and chart.locator("rect").count() == columns
    accessible(admin, artefacts, "admin-report")
    assert (errors, unguarded) == ([], [])
    context.close()

    site.accounts.create_account("auditor", PASSWORD, Role.AUDITOR)
    context = person(browser, site)
    auditor = sign_in(context, "auditor", "/console")
    auditor.goto("/admin")
    expect(auditor.locator("#waivers li[data-version='2027-1']")).to_be_visible()
    expect(auditor.locator("#owners tr[data-owner=gina]")).to_be_visible()
    expect(auditor.locator("#accounts tr[data-username=auditor]")).to_contain_text("auditor")
    expect(auditor.locator("#publish")).to_be_hidden()
    expect(auditor.locator("#invite")).to_be_hidden()
    refused = auditor.evaluate(
        """async () => { try { await api("POST", API.waivers, {version: "x", text: "y"}); }
                         catch (e) { return [e.status, e.problem.error]; } }"""
    )
    assert refused == [403, "Forbidden"], refused
    accessible(auditor, artefacts, "admin-auditor")
    context.close()

    context = person(browser, site)
    officer = sign_in(context, "officer", "/console")
    assert officer.goto("/admin").status == 403
    context.close()


def test_the_pages_json_reader_keeps_what_python_hashed(browser: Any, site: Site) -> None:
    """slice.js's parser and canonical form, fuzzed in the browser: any JSON Python writes, in
    any layout, reads back to the exact canonical text Python hashes (camgate.audit's
    canonical JSON); any other text is a SyntaxError, never another failure."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    context = person(browser, site)
    page = sign_in(context, "dave", "/portal")
    run = """(text) => { try { return [true, canonical(parseExact(text))]; }
                        catch (e) { return [e instanceof SyntaxError, null]; } }"""
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
        allow_infinity=False) | st.text(st.characters(exclude_categories=["Cs"]))  # fmt: skip
    values = st.recursive(
        leaves, lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids), max_leaves=12
    )

    @settings(max_examples=60, deadline=None)
    @given(values, st.sampled_from([None, 1, 2]))
    def same_bytes(value: Any, indent: int | None) -> None:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert page.evaluate(run, json.dumps(value, indent=indent)) == [True, expected]

    @settings(max_examples=60, deadline=None)
    @given(st.text(max_size=40))
    def a_clear_error(text: str) -> None:
        ok, canonical = page.evaluate(run, text)
        assert ok, text  # a SyntaxError when not JSON
        if canonical is not None:
            assert json.loads(canonical) == json.loads(text)

    same_bytes()
    a_clear_error()
    context.close()


def test_the_portal_resumes_its_events_after_the_stream_drops(browser: Any, site: Site) -> None:
    """The event stream ends after event 1 (the browser reconnects by itself, sending
    Last-Event-ID), the server then answers with an error (the stream is closed for good), and
    the page opens it again itself from after event 1 (?after=1); a request made after that
    comes by the reopened stream (no poll)."""
    from playwright.sync_api import expect

    context = person(browser, site)
    opened: list[str] = []

    def events(route: Any) -> None:
        opened.append(route.request.url.split("/", 3)[3])
        if len(opened) == 1:  # a stream with one event, then its end
            route.fulfill(status=200, content_type="text/event-stream",
                          body="retry: 300\nid: 1\nevent: decision\ndata: {}\n\n")  # fmt: skip
        elif len(opened) == 2:
            route.fulfill(status=503, body="")
        else:
            route.continue_()

    context.route("**/events*", events)
    owner = sign_in(context, "dave", "/portal")
    expect(owner.locator("#pending-empty")).to_be_visible()
    deadline = time.monotonic() + SEEN_MS / 1000
    while len(opened) < 3 and time.monotonic() < deadline:
        owner.wait_for_timeout(100)
    # The browser's own reconnection, then the page's from the last event it saw.
    assert opened[:3] == ["events", "events", "events?after=1"], opened

    officer_ctx = person(browser, site)
    officer = sign_in(officer_ctx, "officer", "/console")
    expect(officer.locator("#whoami")).to_contain_text("officer")  # its CSRF token is in
    asked = officer.evaluate(
        """async ([lat, lon]) => {
             const made = await api("POST", API.incidents, {kind: "burglary", lat, lon,
                                                            radius_m: 300});
             return (await api("POST", API.requests(made.id), {camera: "d1", scope: "live"}))
               .request; }""",
        [CENTRE.lat, CENTRE.lon],
    )
    expect(owner.locator(f"#pending li[data-request={asked}]")).to_be_visible()
    officer_ctx.close()
    context.close()


#: The brightest pixel (Rec. 601 luma) of a canvas inside a box of normalised coordinates.
_CANVAS_MAX = """(canvas, [x0, y0, x1, y1]) => {
  const [w, h] = [canvas.width, canvas.height];
  const box = [Math.round(x0 * w), Math.round(y0 * h), Math.round((x1 - x0) * w),
               Math.round((y1 - y0) * h)];
  const px = canvas.getContext("2d").getImageData(...box).data;
  let top = 0;
  for (let i = 0; i < px.length; i += 4) {
    top = Math.max(top, Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]));
  }
  return top;
}"""
#: Erin's shapes on e1 (colour bars): the top-right quarter drawn with the mouse, the bottom
#: left with the keyboard; and a box inside each, and one in neither.
MOUSE_SHAPE = [(0.55, 0.05), (0.95, 0.05), (0.95, 0.45), (0.55, 0.45)]
KEYS_SHAPE = [(0.1, 0.6), (0.4, 0.6), (0.4, 0.9), (0.1, 0.9)]
INSIDE = [(0.6, 0.1, 0.9, 0.4), (0.15, 0.65, 0.35, 0.85)]
OUTSIDE = (0.05, 0.05, 0.45, 0.45)


def test_an_owner_draws_masks_on_their_own_picture_and_the_police_get_them(
    browser: Any, site: Site, artefacts: Path
) -> None:
    """Erin takes a current picture of e1 (her own look, audited as hers and not as an
    access), draws one shape with the mouse and one with the keyboard alone, sees them
    blacked out before saving, and saves them; an officer's later snapshot of e1 has both
    burnt in."""
    from playwright.sync_api import expect

    # A second account of erin's (the invitation test made "erin" already, when it ran).
    site.accounts.create_account("erinm", PASSWORD, Role.OWNER, owner_id="erin")
    context = person(browser, site)
    errors = console_errors(context)
    unguarded = csrf_watch(context)
    owner = sign_in(context, "erinm", "/portal")
    expect(owner.get_by_label("Camera", exact=True)).to_have_value("e1")
    accesses = len(list(site.gate.audit.records("access.start")))
    owner.get_by_role("button", name="Take a current picture").click()
    canvas = owner.locator("#mask-canvas")
    expect(canvas).to_be_visible()
    looks = [r.body for r in site.gate.audit.records("owner.look")]
    assert [(b["owner"], b["camera"], b["by"]) for b in looks] == [("erin", "e1", "erinm")]
    assert len(list(site.gate.audit.records("access.start"))) == accesses, "not an access"
    assert canvas.evaluate(_CANVAS_MAX, list(INSIDE[0])) > 100, "the raw picture"

    box = canvas.bounding_box()
    for x, y in MOUSE_SHAPE:
        canvas.click(position={"x": x * box["width"], "y": y * box["height"]})
    owner.get_by_role("button", name="Close this shape").click()
    # The second shape from the keyboard alone: the pointer starts in the middle.
    tab_to(owner, canvas)
    keys = ["Shift+ArrowLeft"] * 4 + ["ArrowDown"] * 5 + ["Enter"]  # (0.1, 0.6)
    keys += ["Shift+ArrowRight"] * 3 + ["Enter"]  # (0.4, 0.6)
    keys += ["Shift+ArrowDown"] * 3 + ["Enter"]  # (0.4, 0.9)
    keys += ["Shift+ArrowLeft"] * 3 + [" "]  # (0.1, 0.9)
    for key in keys:
        owner.keyboard.press(key)
    expect(owner.locator("#mask-state")).to_contain_text("4 corner(s)")
    tab_to(owner, owner.get_by_role("button", name="Close this shape"))
    owner.keyboard.press("Enter")
    expect(owner.locator("#mask-shapes li")).to_have_count(2)
    # The masked result, before saving: black under both shapes, the picture beside them.
    for inside in INSIDE:
        assert canvas.evaluate(_CANVAS_MAX, list(inside)) <= 32, inside
    assert canvas.evaluate(_CANVAS_MAX, list(OUTSIDE)) > 100
    assert site.gate.masks("e1") is None, "nothing saved yet"
    accessible(owner, artefacts, "portal-masks")

    owner.get_by_role("button", name="Save these masks for camera e1").click()
    expect(owner.locator("#mask-state")).to_contain_text("as saved")
    saved = site.gate.masks("e1")
    assert saved is not None and saved.set_by == "erin"  # the owner
    for got, drawn in zip(saved.polygons, (MOUSE_SHAPE, KEYS_SHAPE), strict=True):
        assert [c for xy in got for c in xy] == pytest.approx(
            [c for xy in drawn for c in xy], abs=0.01
        )
    assert (errors, unguarded) == ([], [])
    context.close()

    # The police's next snapshot of e1 has both shapes burnt in by the server.
    context, errors, officer = console_page(browser, site)
    report(officer, "Snapshot")
    _, tile = download(officer, "e1", "snapshot")
    with officer.expect_download() as saving:
        tile.get_by_role("link", name=re.compile(r"^Save e1-.*\.jpg$")).click()
    with av.open(saving.value.path(), format="image2pipe") as container:
        grey = next(iter(container.decode(video=0))).to_ndarray(format="gray")
    height, width = grey.shape

    def part(x0: float, y0: float, x1: float, y1: float) -> Any:
        return grey[int(y0 * height) : int(y1 * height), int(x0 * width) : int(x1 * width)]

    for inside in INSIDE:
        assert int(part(*inside).max()) <= 32, f"masked at {inside}"
    assert int(part(*OUTSIDE).max()) > 100, "the picture beside the masks"
    assert errors == []
    context.close()


def _to_ms(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_a_recorded_clip_is_requested_and_downloaded_from_the_console(
    browser: Any, site: Site, artefacts: Path
) -> None:
    """The officer asks for recorded video of o1 (a simulated ONVIF device) from a start to
    an end typed in local time; the clip comes into the grid as a video Chromium plays, and
    the saved file holds exactly that window's pictures with the hash the log recorded."""
    from camgate_onvif.testing import read_code
    from playwright.sync_api import expect

    rec = site.onvif.recording
    # Half a picture off the pictures' capture times, to the millisecond a person may type:
    # which pictures are inside is not a matter of microseconds.
    half = timedelta(seconds=0.5 / rec.fps)
    start = _to_ms(rec.start + timedelta(seconds=5) - half)
    end = _to_ms(start + timedelta(seconds=2))
    context, errors, officer = console_page(browser, site)
    officer.get_by_label("Access wanted").select_option(label="Recorded video")
    # The fields take the officer's local time, as a person types it.
    local = "(iso) => { const d = new Date(iso); return new Date(d - d.getTimezoneOffset() * 6e4).toISOString().slice(0, 23); }"  # noqa: E501
    officer.get_by_label("From").fill(officer.evaluate(local, start.isoformat()))
    officer.get_by_label("To").fill(officer.evaluate(local, end.isoformat()))
    report(officer, "Recorded video")
    _, tile = download(officer, "o1", "recorded")  # hana pre-authorised it
    video = tile.get_by_label("Recorded video of camera o1")
    # Chromium plays it: its length is the window's, and it decodes pictures.
    length = video.evaluate(
        """(v) => new Promise((done) => {
             const ready = () => done(v.duration);
             if (v.readyState >= 1) ready(); else v.addEventListener("loadedmetadata", ready);
           })"""
    )
    assert abs(length - 2.0) < 0.5, length
    video.evaluate("(v) => { v.muted = true; return v.play(); }")
    deadline = time.monotonic() + SEEN_MS / 1000
    while video.evaluate("(v) => v.getVideoPlaybackQuality().totalVideoFrames") < 10:
        assert time.monotonic() < deadline, "the clip does not play"
        officer.wait_for_timeout(50)
    accessible(officer, artefacts, "console-clip")
    with officer.expect_download() as saving:
        tile.get_by_role("link", name=re.compile(r"^Save o1-.*\.mp4$")).click()
    saved = Path(saving.value.path())
    with av.open(str(saved)) as container:
        shown = [read_code(frame) for frame in container.decode(video=0)]
    first = rec.index_at(start)
    while not rec.frames[first].keyframe:
        first += 1
    assert shown == list(range(first, rec.index_at(end))), "the window asked for, whole"
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    expect(tile.locator(".media-status")).to_contain_text(digest)
    assert digest in [r.body.get("sha256") for r in site.gate.audit.records("clip.exported")]
    assert errors == []
    context.close()

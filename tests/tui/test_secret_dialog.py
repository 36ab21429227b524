"""The CHAP secret dialog: masked, confirmed twice, the value never on screen."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Input

from tui.dialogs import SecretDialog, SecretValue


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(SecretDialog("pool-chap"), self.results.append)


def screen_text(app: App) -> str:
    return "\n".join("".join(seg.text for seg in strip)
                     for strip in app.screen._compositor.render_strips())


async def test_secret_is_masked_and_must_match():
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one("#value", Input).value = "hunter2-secret"
        app.screen.query_one("#again", Input).value = "hunter2-typo"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == []  # refused: the two values differ
        assert "differ" in screen_text(app)
        assert "hunter2" not in screen_text(app)
        app.screen.query_one("#again", Input).value = "hunter2-secret"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == [SecretValue("pool-chap", "hunter2-secret")]

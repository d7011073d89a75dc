"""The default user agent (tasks/browser_options.py): Chromium's own with HeadlessChrome replaced, and client hints
built as Chromium builds them, checked against what headless Chromium 156 itself gave a page."""
from __future__ import annotations

from types import SimpleNamespace

from core.config import load
from tasks.browser_options import user_agent_metadata, user_agent_override
from tasks.chromium_flags import locale_flags
from tests.support.settings import config_with

HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
BROWSER = SimpleNamespace(user_agent=HEADLESS, version="Chrome/156.0.8078.129")


def test_brands_are_chromiums_own_for_its_version():
    # As navigator.userAgentData.getHighEntropyValues gave them on Chromium 156, headless, no override.
    metadata = user_agent_metadata("156.0.8078.129", mobile=False)
    assert metadata["brands"] == [{"brand": "Not:A-Brand", "version": "8"}, {"brand": "Chromium", "version": "156"}]
    assert metadata["fullVersionList"] == [{"brand": "Not:A-Brand", "version": "8.0.0.0"},
                                           {"brand": "Chromium", "version": "156.0.8078.129"}]
    assert (metadata["platform"], metadata["mobile"]) == ("Linux", False)


def test_the_default_hides_headless_and_keep_leaves_chromiums_own():
    hidden = user_agent_override(load(), BROWSER, {})
    assert hidden["userAgent"] == HEADLESS.replace("HeadlessChrome/", "Chrome/")
    assert hidden["userAgentMetadata"]["fullVersion"] == "156.0.8078.129"
    keep = config_with(BROKER_HEADLESS_USER_AGENT="keep")
    assert user_agent_override(keep, BROWSER, {}) is None
    assert user_agent_override(keep, BROWSER, {"locale": "de-DE"}) is None


def test_a_user_agent_of_ones_own_goes_without_client_hints_and_the_language_is_a_launch_flag():
    override = user_agent_override(load(), BROWSER, {"userAgent": "Mine/1.0", "locale": "pt-BR"})
    assert override == {"userAgent": "Mine/1.0"}
    assert "acceptLanguage" not in user_agent_override(load(), BROWSER, {"locale": "fr"})
    assert locale_flags("pt-BR") == ["--lang=pt-BR", "--accept-lang=pt-BR,pt"]
    assert locale_flags("fr") == ["--lang=fr", "--accept-lang=fr"]
    mobile = user_agent_override(load(), BROWSER, {"viewport": {"width": 390, "height": 844, "mobile": True}})
    assert mobile["userAgentMetadata"]["mobile"] is True

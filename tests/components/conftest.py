from __future__ import annotations

from components import settings  # noqa: F401  (first: temp dir, analytics off)

import pytest

from tests.components import helpers


@pytest.fixture(scope="session")
def app_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    pre, sent = helpers.save_tiny_models(root)
    return {"pretrain": pre, "sentiment": sent, **helpers.make_media_set(root / "media")}


@pytest.fixture(scope="session")
def demo(app_files):
    import app

    return app.build_demo(app_files["pretrain"], app_files["sentiment"], examples=helpers.examples(app_files))


@pytest.fixture(scope="session")
def ctx(demo):
    return demo.ctx


@pytest.fixture(scope="session")
def clip_key(ctx, app_files):
    from components import inputs

    key, _ = inputs.load_clip(ctx, str(app_files["clip"]), None, 0.0, 2.0, "default", None)
    return key

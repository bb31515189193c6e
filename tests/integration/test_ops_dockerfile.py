"""deploy/docker/Dockerfile, linted by parsing (no Docker engine here, so it is not built):
pinned base image, non-root user, health check on /healthz, `esm run` entry point."""

from __future__ import annotations

import re

from tests.integration.e2e_support import REPO_ROOT

DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_base_image_is_pinned_to_an_exact_python_version():
    args = dict(a.split("=", 1) for i, a in instructions() if i == "ARG" and "=" in a)
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    froms = [a for i, a in instructions() if i == "FROM"]
    assert froms and all(a.startswith("${PYTHON_IMAGE}") for a in froms)


def test_final_stage_runs_as_a_non_root_user():
    final = instructions()[max(n for n, (i, _) in enumerate(instructions()) if i == "FROM"):]
    users = [a for i, a in final if i == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)


def test_health_check_probes_healthz_and_the_entry_point_runs_esm():
    found = dict(instructions())
    assert "/healthz" in found["HEALTHCHECK"]
    assert found["ENTRYPOINT"] == '["esm"]' and found["CMD"].startswith('["run"')
    assert found["EXPOSE"] == "9102" and found["STOPSIGNAL"] == "SIGTERM"


def test_copied_paths_exist_in_the_repository():
    for instruction, args in instructions():
        if instruction == "COPY" and "--from" not in args:
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), source

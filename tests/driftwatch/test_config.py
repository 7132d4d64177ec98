"""Configuration: precedence (argument > env > file > default) and errors that name file:line:key."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwatch import ConfigError, load_config


@pytest.mark.parametrize(
    ("argument", "env", "file", "expected"),
    [
        (None, None, None, 1e-4),  # default
        (None, None, 0.001, 0.001),  # file
        (None, "0.002", 0.001, 0.002),  # env over file
        (0.003, "0.002", 0.001, 0.003),  # argument over env
    ],
)
def test_precedence(
    tmp_path: Path, argument: float | None, env: str | None, file: float | None, expected: float
) -> None:
    """Argument > DRIFTWATCH_* variable > YAML file > default, as one table."""
    path = None
    if file is not None:
        path = tmp_path / "driftwatch.yaml"
        path.write_text(f"service: agent\nbudget: {file}\n")
    environ = {"DRIFTWATCH_BUDGET": env} if env else {}
    config = load_config(str(path) if path else None, env=environ, budget=argument)
    assert config.budget == expected


def test_otel_service_name_is_the_default_service() -> None:
    """OTEL_SERVICE_NAME names the service when nothing else does."""
    assert load_config(env={"OTEL_SERVICE_NAME": "checkout-bot"}).service == "checkout-bot"


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    """An unknown key is reported with file:line and the valid keys."""
    path = tmp_path / "c.yaml"
    path.write_text("service: a\n\nbugdet: 0.001\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: unknown key 'bugdet'; valid keys are: .*budget"):
        load_config(str(path), env={})


def test_bad_value_names_key_and_valid_form(tmp_path: Path) -> None:
    """A bad value names file:line, the key, the valid form and the value given."""
    path = tmp_path / "c.yaml"
    path.write_text("service: a\nwarmup: lots\n")
    with pytest.raises(
        ConfigError, match=rf"{path}:2: key 'warmup': expected a whole number >= 1, got 'lots'"
    ):
        load_config(str(path), env={})


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """Broken YAML is reported with its line."""
    path = tmp_path / "c.yaml"
    path.write_text("service: a\nsignals: [success\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(str(path), env={})


def test_bad_env_value_names_the_variable() -> None:
    """A bad environment value names the variable."""
    with pytest.raises(ConfigError, match="DRIFTWATCH_BUDGET"):
        load_config(env={"DRIFTWATCH_BUDGET": "often"})


def test_signals_must_be_known(tmp_path: Path) -> None:
    """Signals are checked against the known list."""
    with pytest.raises(ConfigError, match="signals"):
        load_config(env={}, signals=["vibes"])


def test_version_markers_and_comparison_settings_from_yaml(tmp_path: Path) -> None:
    """version_markers, compare_min/max and compare_alpha are read from YAML like the other settings."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "version_markers: [model, deploy]\ncompare_min: 50\ncompare_max: 200\ncompare_alpha: 0.1\n"
    )
    config = load_config(str(path), env={})
    assert config.version_markers == ["model", "deploy"]
    assert (config.compare_min, config.compare_max, config.compare_alpha) == (50, 200, 0.1)
    assert load_config(env={}).version_markers == ["model", "app.version", "version", "effort", "provider"]


def test_bad_version_markers_name_the_valid_form(tmp_path: Path) -> None:
    """A version_markers value that is not a list of names is reported with file:line and an example."""
    path = tmp_path / "c.yaml"
    path.write_text("service: a\nversion_markers: model\n")
    with pytest.raises(
        ConfigError, match=rf"{path}:2: key 'version_markers': expected a list of .* such as \[model"
    ):
        load_config(str(path), env={})


def test_compare_min_above_compare_max_is_refused() -> None:
    """compare_min larger than compare_max could never compare: refused with both values."""
    with pytest.raises(ConfigError, match=r"'compare_min' \(500\) and 'compare_max' \(400\)"):
        load_config(env={}, compare_min=500)


@pytest.mark.parametrize(
    ("argument", "env", "file", "expected"),
    [
        (None, None, None, 4318),  # default
        (None, None, 5000, 5000),  # file
        (None, "5001", 5000, 5001),  # env over file
        (5002, "5001", 5000, 5002),  # argument over env
    ],
)
def test_receiver_precedence(
    tmp_path: Path, argument: int | None, env: str | None, file: int | None, expected: int
) -> None:
    """http_port follows argument > DRIFTWATCH_HTTP_PORT > YAML file > default, as one table."""
    path = None
    if file is not None:
        path = tmp_path / "driftwatch.yaml"
        path.write_text(f"host: 127.0.0.1\nhttp_port: {file}\n")
    environ = {"DRIFTWATCH_HTTP_PORT": env} if env else {}
    assert load_config(str(path) if path else None, env=environ, http_port=argument).http_port == expected


def test_receiver_settings_from_yaml_and_env(tmp_path: Path) -> None:
    """Receiver settings read from YAML; the token from DRIFTWATCH_TOKEN; port 0 allowed (any free port)."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "host: 0.0.0.0\ngrpc_port: 0\nmax_body_bytes: 1048576\nmax_attributes: 64\n"
        "tls_cert: /etc/dw/cert.pem\ntls_key: /etc/dw/key.pem\nworkers: 4\nmax_pending: 16\n"
    )
    config = load_config(str(path), env={"DRIFTWATCH_TOKEN": "abc123"})
    assert (config.host, config.grpc_port, config.http_port) == ("0.0.0.0", 0, 4318)
    assert (config.max_body_bytes, config.max_attributes, config.workers, config.max_pending) == (
        1048576,
        64,
        4,
        16,
    )
    assert (config.tls_cert, config.tls_key, config.token) == (
        "/etc/dw/cert.pem",
        "/etc/dw/key.pem",
        "abc123",
    )
    assert load_config(env={}).token is None


def test_bad_port_names_file_line_and_range(tmp_path: Path) -> None:
    """A port outside 0..65535 is reported with file:line and the valid range."""
    path = tmp_path / "c.yaml"
    path.write_text("service: a\ngrpc_port: 70000\n")
    with pytest.raises(
        ConfigError, match=rf"{path}:2: key 'grpc_port': expected a port number 0..65535, got 70000"
    ):
        load_config(str(path), env={})


def test_bad_token_is_not_echoed() -> None:
    """A token with spaces is refused without showing the secret."""
    with pytest.raises(
        ConfigError, match="DRIFTWATCH_TOKEN: key 'token': expected a non-empty string"
    ) as caught:
        load_config(env={"DRIFTWATCH_TOKEN": "my secret"})
    assert "my secret" not in str(caught.value)


def test_stage_two_settings_from_yaml_env_and_their_errors(tmp_path: Path) -> None:
    """confirm_alpha (now the sequential test's anytime error rate), withdraw_beta, min_shift, max_fresh."""
    path = tmp_path / "c.yaml"
    path.write_text("confirm_alpha: 0.01\nmin_shift: 0.3\nmax_fresh: 500\n")
    config = load_config(str(path), env={"DRIFTWATCH_WITHDRAW_BETA": "0.02"})
    assert (config.confirm_alpha, config.withdraw_beta, config.min_shift, config.max_fresh) == (
        0.01,
        0.02,
        0.3,
        500,
    )
    defaults = load_config(env={})
    assert (defaults.confirm_alpha, defaults.withdraw_beta, defaults.min_shift, defaults.max_fresh) == (
        0.05,
        0.01,
        0.2,
        2000,
    )
    for text, message in (
        (
            "min_shift: 0",
            r":1: key 'min_shift': expected a shift in standard deviations, above 0 and at most 2",
        ),
        ("min_shift: lots", r":1: key 'min_shift': .* got 'lots'"),
        (
            "max_fresh: 5",
            r":1: key 'max_fresh': expected a whole number of fresh observations >= 10 .* got 5",
        ),
        ("withdraw_beta: 1.5", r":1: key 'withdraw_beta': expected a number between 0 and 1, got 1.5"),
    ):
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=rf"{path}{message}"):
            load_config(str(path), env={})
    with pytest.raises(
        ConfigError, match=r"environment variable DRIFTWATCH_WITHDRAW_BETA: key 'withdraw_beta'"
    ):
        load_config(env={"DRIFTWATCH_WITHDRAW_BETA": "0"})

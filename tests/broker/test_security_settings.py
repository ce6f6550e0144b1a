"""Listener settings with Kafka's names and meanings, certificate principals and their mapping rules, and
the OAUTHBEARER client message, without a broker."""

from __future__ import annotations

import json
import ssl
import uuid
from pathlib import Path

import pytest
from streamraft_broker.config import BrokerConfig, ConfigError, load_config
from streamraft_broker.controller.commands import encode
from streamraft_broker.controller.state import BrokerReg, ControllerState
from streamraft_broker.security import pki
from streamraft_broker.security.authenticators import check_sasl_settings
from streamraft_broker.security.listeners import inter_broker_listener, parse_listeners
from streamraft_broker.security.oauth import TokenError, parse_client_response
from streamraft_broker.security.tls import PrincipalMapper, subject_dn


def test_without_listeners_there_is_one_plaintext_listener_on_listen() -> None:
    cfg = load_config({"listen": "0.0.0.0:9092", "advertise": "kafka-0:19092"}, {})
    (only,) = parse_listeners(cfg)
    assert (only.name, only.security_protocol, only.host, only.port) == (
        "PLAINTEXT",
        "PLAINTEXT",
        "0.0.0.0",
        9092,
    )
    assert (only.advertised_host, only.advertised_port) == ("kafka-0", 19092)


def test_listeners_map_names_to_protocols_like_kafka() -> None:
    cfg = load_config(
        {
            "listeners": "INTERNAL://:9092,CLIENTS://127.0.0.1:9093,SASL_SSL://[::1]:9094",
            "advertised_listeners": "CLIENTS://kafka.example:443",
            "listener_security_protocol_map": "INTERNAL:SSL,CLIENTS:SASL_SSL",
            "inter_broker_listener_name": "internal",
        },
        {},
    )
    listeners = parse_listeners(cfg)
    assert [(x.name, x.security_protocol, x.host, x.port) for x in listeners] == [
        ("INTERNAL", "SSL", "0.0.0.0", 9092),
        ("CLIENTS", "SASL_SSL", "127.0.0.1", 9093),
        ("SASL_SSL", "SASL_SSL", "::1", 9094),
    ]
    assert (listeners[1].advertised_host, listeners[1].advertised_port) == ("kafka.example", 443)
    assert inter_broker_listener(cfg, listeners).name == "INTERNAL"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"listeners": "CLIENTS://:9092"}, "no security protocol"),
        ({"listeners": "PLAINTEXT:9092"}, "NAME://HOST:PORT"),
        ({"listeners": "PLAINTEXT://:9092,PLAINTEXT://:9093"}, "appears twice"),
        ({"listeners": "PLAINTEXT://:9092", "advertised_listeners": "SSL://h:1"}, "not in listeners"),
        ({"listeners": "PLAINTEXT://:9092", "inter_broker_listener_name": "SSL"}, "not one of the listeners"),
        ({"listeners": "A://:1", "listener_security_protocol_map": "A:TLS"}, "NAME:PROTOCOL"),
    ],
)
def test_bad_listener_settings_name_what_is_wrong(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_listeners(load_config(settings, {}))


def test_unknown_sasl_mechanism_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GSSAPI"):
        load_config({"sasl_enabled_mechanisms": "PLAIN,GSSAPI"}, {})


def test_config_file_takes_kafka_dotted_names(tmp_path: Path) -> None:
    path = tmp_path / "broker.yaml"
    path.write_text(
        "listeners: SASL_SSL://:9093\nssl.client.auth: required\nconnections.max.reauth.ms: 60000\n"
    )
    cfg = load_config({}, {}, path)
    assert (cfg.listeners, cfg.ssl_client_auth, cfg.connections_max_reauth_ms) == (
        "SASL_SSL://:9093",
        "required",
        60000,
    )


def test_certificate_subject_is_printed_most_specific_first(tmp_path: Path) -> None:
    ca = pki.create_ca(tmp_path)
    alice = pki.issue(ca, tmp_path, "alice", common_name="alice", organizational_unit="eng")
    der = ssl.PEM_cert_to_DER_cert(alice.cert.read_text())
    # pki encodes CN before OU; Kafka prints X500Principal.getName(): RFC 2253, the last RDN of the
    # encoded name first.
    assert subject_dn(der) == "OU=eng,CN=alice"


@pytest.mark.parametrize(
    ("rules", "dn", "principal"),
    [
        ("DEFAULT", "CN=alice,OU=eng", "CN=alice,OU=eng"),
        ("RULE:^CN=(.*?),OU=(.*)$/$1@$2/,DEFAULT", "CN=alice,OU=eng", "alice@eng"),
        ("RULE:^CN=(.*?),OU=.*$/$1/U", "CN=alice,OU=eng", "ALICE"),
        ("RULE:^OU=eng,CN=(.*)$/$1/L,DEFAULT", "OU=eng,CN=Bob", "bob"),
        ("RULE:^CN=(.*)$/$1/,DEFAULT", "OU=x,CN=carol", "OU=x,CN=carol"),
    ],
)
def test_principal_mapping_rules(rules: str, dn: str, principal: str) -> None:
    assert PrincipalMapper(rules).map(dn) == principal


def test_mapping_rules_without_a_match_refuse_the_certificate() -> None:
    with pytest.raises(ValueError, match=r"no ssl\.principal\.mapping\.rules rule matches"):
        PrincipalMapper("RULE:^CN=(.*)$/$1/").map("OU=x")
    with pytest.raises(ConfigError, match="cannot parse"):
        PrincipalMapper("RULE:nonsense")


def test_oauthbearer_client_response() -> None:
    assert parse_client_response(b"n,,\x01auth=Bearer abc.def.ghi\x01traceId=7\x01\x01") == (
        "abc.def.ghi",
        {"traceId": "7"},
    )
    for bad in (b"n,,\x01auth=Basic xyz\x01\x01", b"n,,\x01\x01", b"garbage"):
        with pytest.raises(TokenError):
            parse_client_response(bad)


def test_defaults_keep_a_plain_broker() -> None:
    cfg = BrokerConfig()
    assert (cfg.listeners, cfg.ssl_client_auth, cfg.connections_max_reauth_ms) == ("", "none", 0)


def test_registered_listener_endpoints_survive_a_controller_snapshot() -> None:
    reg = BrokerReg(
        1, "10.0.0.1", 9092, "10.0.0.1:9093", None, str(uuid.uuid4()), listeners={"SSL": "b1:9094"}
    )
    state = ControllerState()
    state.apply(encode(reg.command()))
    assert state.brokers[1].listeners == {"SSL": "b1:9094"}
    assert ControllerState.from_snapshot(state.to_snapshot()).brokers[1].listeners == {"SSL": "b1:9094"}
    # A registration without named listeners is encoded as before they existed.
    plain = BrokerReg(2, "10.0.0.2", 9092, "10.0.0.2:9093", None, str(uuid.uuid4()))
    assert "listeners" not in json.loads(encode(plain.command()))


@pytest.mark.parametrize(
    ("mechanisms", "message"),
    [
        ("PLAIN", "sasl_plain_users_file"),
        ("OAUTHBEARER", "sasl_oauthbearer_jwks_endpoint_url"),
        ("", "empty"),
    ],
)
def test_sasl_listener_needs_usable_mechanisms(mechanisms: str, message: str) -> None:
    cfg = load_config({"listeners": "SASL_PLAINTEXT://:9092", "sasl_enabled_mechanisms": mechanisms}, {})
    with pytest.raises(ConfigError, match=message):
        check_sasl_settings(cfg, parse_listeners(cfg))
    plain = load_config({"sasl_enabled_mechanisms": mechanisms}, {})
    check_sasl_settings(plain, parse_listeners(plain))  # no SASL listener: nothing to check

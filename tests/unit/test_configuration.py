"""One source of truth: the template names resources, Settings reads them."""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.data.deliveries import BY_CREATED_INDEX
from chalicelib.hits.config import HitPathConfig
from chalicelib.settings import ENV_PREFIX, Settings
from infra.template import IntrinsicResolver, load_template, parameter_values


def test_hit_path_reads_only_settings_variables_with_the_same_defaults() -> None:
    fields = Settings.model_fields
    for field in dataclasses.fields(HitPathConfig):
        assert field.name in fields, f"hit path reads SENDTRAIL_{field.name.upper()}, which Settings does not know"
    assert fields["ip_address_mode"].default == "truncated"
    assert fields["signing_keys_max_age_seconds"].default == 300


def test_every_sendtrail_variable_of_the_template_is_a_setting() -> None:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    for name in variables:
        if name.startswith(ENV_PREFIX):
            assert name[len(ENV_PREFIX):].lower() in Settings.model_fields, name


def test_every_resource_name_setting_comes_from_the_template() -> None:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    for name in ("hit_stream", "deliveries_table", "delivery_logs_table", "addresses_table", "redirection_log_bucket",
                 "tracking_table", "tracking_stats_table", "tracking_runs_table", "workflow_table"):
        assert f"{ENV_PREFIX}{name.upper()}" in variables


def test_indexes_the_code_queries_are_declared() -> None:
    from chalicelib.data.addresses import BY_QUARANTINE_INDEX
    from chalicelib.data.deliveries import BY_STATE_INDEX, BY_STATUS_INDEX

    resources = load_template()["Resources"]
    for table, index in (("DeliveriesTable", BY_CREATED_INDEX), ("DeliveriesTable", BY_STATE_INDEX),
                         ("DeliveryLogsTable", BY_STATUS_INDEX), ("AddressesTable", BY_QUARANTINE_INDEX)):
        indexes = resources[table]["Properties"]["GlobalSecondaryIndexes"]
        assert index in [declared["IndexName"] for declared in indexes], (table, index)


def test_the_affinities_come_from_the_template_with_or_without_a_dedicated_pool(monkeypatch: Any) -> None:
    from infra.template import evaluate_conditions, function_environment

    template = load_template()
    for parameters, pool in (({}, None), ({"DedicatedIpPoolName": "marketing", "MaxSendRate": "14"}, "marketing")):
        values = parameter_values(template, {"Stage": "prod", **parameters})
        physical = {logical: f"physical-{logical}" for logical in template["Resources"]}
        resolver = IntrinsicResolver({**values, **physical, "DefaultConfigurationSet": "sendtrail-prod-default",
                                      "DedicatedIpPool": "marketing"}, {("HitsHttpApi", "ApiEndpoint"): "https://hits"},
                                     conditions=evaluate_conditions(template, values))
        environment = function_environment(template, resolver)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        settings = Settings()  # type: ignore[call-arg]
        affinity = settings.affinity(None)
        assert affinity is not None and affinity.configuration_set == "sendtrail-prod-default"
        assert affinity.ip_pool == pool
        assert affinity.max_rate == (14 if pool else None)
        assert settings.affinity("transactional") is None
        configuration_set = template["Resources"]["DefaultConfigurationSet"]["Properties"]
        pool_option = resolver.resolve(configuration_set["DeliveryOptions"])
        assert pool_option.get("SendingPoolName") == pool  # no pool: the property is left out (AWS::NoValue)


def test_resource_names_resolve_per_stage() -> None:
    template = load_template()
    for stage in ("local", "dev", "prod"):
        values = parameter_values(template, {"Stage": stage})
        resolver = IntrinsicResolver(values)
        name = resolver.resolve(template["Resources"]["HitStream"]["Properties"]["Name"])
        assert name == f"sendtrail-{stage}-hits"


def test_pixel_is_binary_for_every_accept_header_in_api_gateway() -> None:
    rest_api = load_template()["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert rest_api["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def _chalice_function_logical_ids() -> set[str]:
    """The logical ids `chalice package` gives app.py's Lambda functions (from Chalice's own app graph)."""
    import json
    from pathlib import Path

    from chalice.config import Config
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
    from chalice.utils import to_cfn_resource_name

    from app import app

    root = Path(__file__).resolve().parents[2]
    config = Config.create(chalice_stage="dev", app_name="sendtrail", project_dir=str(root), chalice_app=app,
                           config_from_disk=json.loads((root / ".chalice" / "config.json").read_text()))
    resources = DependencyBuilder().build_dependencies(ApplicationGraphBuilder().build(config, "dev"))
    return {"APIHandler" if resource.resource_name == "api_handler" else to_cfn_resource_name(resource.resource_name)
            for resource in resources if isinstance(resource, models.LambdaFunction)}


def test_every_function_runs_on_the_architecture_parameter() -> None:
    resources = load_template()["Resources"]
    functions = _chalice_function_logical_ids()
    assert {"APIHandler", "ApiAuth"} <= functions
    for logical_id in functions:
        override = resources.get(logical_id, {})
        assert "Type" not in override, logical_id
        assert override.get("Properties", {}).get("Architectures") == [{"Ref": "Architecture"}], (
            f"{logical_id}: add an override with Architectures: [!Ref Architecture] to infra/template.yaml")


def test_one_native_layer_per_architecture_matching_make_layer() -> None:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("layer", Path(__file__).resolve().parents[2] / "native" / "layer.py")
    layer = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(layer)  # type: ignore[union-attr]
    template = load_template()
    assert template["Parameters"]["Architecture"]["AllowedValues"] == sorted(layer.ARCHITECTURES, reverse=True)
    layers = {logical: spec for logical, spec in template["Resources"].items()
              if spec.get("Type") == "AWS::Serverless::LayerVersion"}
    by_architecture = {spec["Properties"]["CompatibleArchitectures"][0]: spec for spec in layers.values()}
    assert set(by_architecture) == set(layer.ARCHITECTURES)
    for architecture, spec in by_architecture.items():
        assert spec["Properties"]["ContentUri"] == f"./{layer.layer_path(architecture).name}"
        condition = template["Conditions"][spec["Condition"]]
        assert condition == {"Fn::Equals": [{"Ref": "Architecture"}, architecture]}


def test_links_go_through_the_hit_front_door_unless_a_base_url_is_set() -> None:
    """Tracked links are made on SENDTRAIL_PUBLIC_BASE_URL: left empty, a link made through the dashboard API
    would point at the REST API (3.5 times an HTTP API's request fee), so the default is the front door's."""
    from infra.template import evaluate_conditions, function_environment

    template = load_template()
    endpoint = "https://abc123.execute-api.us-east-1.amazonaws.com"

    def base_url(**parameters: str) -> str:
        values = parameter_values(template, {"Stage": "prod", **parameters})
        physical = {logical: f"physical-{logical}" for logical in template["Resources"]}
        resolver = IntrinsicResolver({**values, **physical, "DefaultConfigurationSet": "set", "DedicatedIpPool": "pool"},
                                     {("HitsHttpApi", "ApiEndpoint"): endpoint},
                                     conditions=evaluate_conditions(template, values))
        return function_environment(template, resolver)["SENDTRAIL_PUBLIC_BASE_URL"]

    assert base_url() == endpoint
    assert base_url(TrackingDomainName="t.example.com") == "https://t.example.com"
    assert base_url(TrackingBaseUrl="https://links.example.com", TrackingDomainName="t.example.com") == (
        "https://links.example.com")
    assert base_url(HitFrontDoor="RestApi") == ""  # the address the API was called on: the REST API's own

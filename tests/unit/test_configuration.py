"""One source of truth: the template names resources, Settings reads them."""

from __future__ import annotations

import dataclasses

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
                 "tracking_table", "tracking_stats_table", "workflow_table"):
        assert f"{ENV_PREFIX}{name.upper()}" in variables


def test_indexes_the_code_queries_are_declared() -> None:
    table = load_template()["Resources"]["DeliveriesTable"]["Properties"]
    assert BY_CREATED_INDEX in [index["IndexName"] for index in table["GlobalSecondaryIndexes"]]


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

"""Every writable property of the APIM SDK's models, for each resource certgate implements, is
implemented, stored and returned as given, or refused by name: as the README's property table
says, and as the node does. A property the SDK gains on an upgrade fails here until it is
classified. Driven by tests/apim_sdk.rs; exits non-zero at the first surprise."""
import os
import re
import time

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models

env = os.environ

# The README table's columns.
IMPLEMENTED, STORED, REFUSED = 1, 2, 3
COLUMN_NAMES = {IMPLEMENTED: "implemented", STORED: "stored and returned as given", REFUSED: "refused by name"}
ARM = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw"


class Resource:
    """One row of the table: the SDK model a client writes, where the test writes it, the
    smallest body the node accepts, and each property's column with a value to try there (None:
    covered by the seed flow instead)."""

    def __init__(self, model, path, base, properties):
        self.model, self.path, self.base, self.properties = model, path, base, properties


RESOURCES = {
    "certificate": Resource(models.CertificateCreateOrUpdateParameters, None, None, {
        "data": [(IMPLEMENTED, None)],
        "password": [(IMPLEMENTED, None)],
        "keyVault": [(IMPLEMENTED, None)],
    }),
    "backend": Resource(models.BackendContract, "/backends/b", {"url": "http://127.0.0.1:9"}, {
        "url": [(IMPLEMENTED, "https://orders.contoso.com/v1")],
        "protocol": [(IMPLEMENTED, "http")],
        "credentials": [(IMPLEMENTED, {"header": {"x-team": ["orders"]}})],
        "tls": [(IMPLEMENTED, {"validateCertificateChain": False, "validateCertificateName": True})],
        "type": [(IMPLEMENTED, "Single"), (REFUSED, "Pool")],
        "title": [(STORED, "Orders")],
        "description": [(STORED, "The orders service")],
        "resourceId": [(STORED, "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/orders")],
        "proxy": [(REFUSED, {"url": "http://proxy.contoso.com:3128"})],
        "properties": [(REFUSED, {"serviceFabricCluster": {"managementEndpoints": ["https://sf:19080"],
                                                           "maxPartitionResolutionRetries": 1}})],
        "circuitBreaker": [(REFUSED, {"rules": []})],
        "pool": [(REFUSED, {"services": [{"id": "/backends/x"}]})],
    }),
    "API": Resource(models.ApiCreateOrUpdateParameter, "/apis/p", {"displayName": "P", "path": "p"}, {
        "displayName": [(IMPLEMENTED, "Orders")],
        "path": [(IMPLEMENTED, "orders-v2")],
        "serviceUrl": [(IMPLEMENTED, "https://orders.contoso.com")],
        "protocols": [(IMPLEMENTED, ["https"])],
        "subscriptionRequired": [(IMPLEMENTED, False), (REFUSED, True)],
        "description": [(STORED, "Orders API")],
        "termsOfServiceUrl": [(STORED, "https://contoso.com/terms")],
        "contact": [(STORED, {"name": "Orders team", "url": "https://contoso.com/orders", "email": "orders@contoso.com"})],
        "license": [(STORED, {"name": "MIT", "url": "https://opensource.org/licenses/MIT"})],
        "apiRevision": [(STORED, "1"), (REFUSED, "2")],
        "isCurrent": [(STORED, True), (REFUSED, False)],
        "type": [(STORED, "http"), (REFUSED, "soap")],
        "apiRevisionDescription": [(REFUSED, "second")],
        "subscriptionKeyParameterNames": [(REFUSED, {"header": "key", "query": "key"})],
        "authenticationSettings": [(REFUSED, {"oAuth2": {"authorizationServerId": "aad"}})],
        "apiVersion": [(REFUSED, "v1")],
        "apiVersionSetId": [(REFUSED, ARM + "/apiVersionSets/orders")],
        "apiVersionSet": [(REFUSED, {"name": "orders", "versioningScheme": "Segment"})],
        "apiVersionDescription": [(REFUSED, "first")],
        "sourceApiId": [(REFUSED, ARM + "/apis/other")],
        "value": [(REFUSED, "{\"openapi\": \"3.0.1\"}")],
        "format": [(REFUSED, "openapi+json")],
        "wsdlSelector": [(REFUSED, {"wsdlServiceName": "s", "wsdlEndpointName": "e"})],
        "apiType": [(REFUSED, "soap")],
        "translateRequiredQueryParameters": [(REFUSED, "template")],
    }),
    "operation": Resource(models.OperationContract, "/apis/p/operations/o",
                          {"displayName": "Get", "method": "GET", "urlTemplate": "/items"}, {
        "displayName": [(IMPLEMENTED, "Get an item")],
        "method": [(IMPLEMENTED, "POST")],
        "urlTemplate": [(IMPLEMENTED, "/items/all")],
        "description": [(STORED, "One item")],
        "templateParameters": [(STORED, [])],
        "request": [(STORED, {"description": "the query", "queryParameters": [{"name": "q", "type": "string"}]})],
        "responses": [(STORED, [{"statusCode": 200, "description": "OK"}])],
        "policies": [(REFUSED, "<policies><inbound /></policies>")],
    }),
    "policy": Resource(models.PolicyContract, "/apis/p/policies/policy",
                       {"format": "rawxml", "value": "<policies><inbound /></policies>"}, {
        "value": [(IMPLEMENTED, "<policies><inbound><base /></inbound></policies>")],
        "format": [(IMPLEMENTED, "xml"), (REFUSED, "xml-link")],
    }),
}

# The nested properties certgate reads, by the SDK model that holds them: a nested property the
# SDK gains fails here too.
NESTED = {
    "KeyVaultContractCreateProperties": {"secretIdentifier", "identityClientId"},
    "BackendCredentialsContract": {"certificateIds", "certificate", "query", "header", "authorization"},
    "BackendAuthorizationHeaderCredentials": {"scheme", "parameter"},
    "BackendTlsProperties": {"validateCertificateChain", "validateCertificateName"},
    "ApiContactInformation": {"name", "url", "email"},
    "ApiLicenseInformation": {"name", "url"},
}
# Kept as the JSON the client sent, whatever it holds (an operation's request and responses).
AS_JSON = {"RequestContract", "[ParameterContract]", "[ResponseContract]"}


class CertgateToken:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(open(env["CERTGATE_TOKEN_FILE"]).read().strip(), int(time.time()) + 3600)


client = ApiManagementClient(CertgateToken(), "00000000-0000-0000-0000-000000000000",
                             base_url=env["CERTGATE_ADMIN_URL"], connection_verify=env["CERTGATE_CA_FILE"])
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAILED: {what}")
    else:
        print(f"ok: {what}")


def writable(model):
    """The model's writable properties: wire name → SDK type."""
    readonly = {k for k, v in getattr(model, "_validation", {}).items() if v.get("readonly")}
    return {v["key"].removeprefix("properties."): v["type"]
            for k, v in model._attribute_map.items() if k not in readonly}


def send(method, path, body=None):
    request = HttpRequest(method, f"{ARM}{path}?api-version=2022-08-01", json=body)
    response = client._send_request(request)
    return response.status_code, (response.json() if response.text() else None)


def readme_rows():
    """The property table's cells by resource name."""
    rows = {}
    for line in open(env["README"]).read().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in RESOURCES:
            rows[cells[0]] = cells
    return rows


rows = readme_rows()
for name, resource in RESOURCES.items():
    # 1. The classification covers exactly the SDK's writable properties.
    sdk = writable(resource.model)
    check(set(sdk) == set(resource.properties),
          f"{name}: SDK properties {sorted(set(sdk) - set(resource.properties))} unclassified, "
          f"{sorted(set(resource.properties) - set(sdk))} not in the SDK" if set(sdk) != set(resource.properties)
          else f"{name}: every SDK property is classified")
    for wire, kind in sdk.items():
        nested = getattr(models, kind, None)
        if hasattr(nested, "_attribute_map") and kind not in AS_JSON and resource.properties[wire][0][0] != REFUSED:
            extra = set(writable(nested)) - NESTED.get(kind, set())
            check(not extra, f"{name}.{wire}: nested SDK properties {sorted(extra)} are known")
    # 2. The README names each property in its column.
    row = rows.get(name)
    check(row is not None, f"README has a row for {name}")
    for wire, entries in resource.properties.items():
        for column, _ in entries:
            check(row is not None and f"`{wire}`" in row[column],
                  f"README: {name} `{wire}` under '{COLUMN_NAMES[column]}'")
    # 3. The node does what the column says.
    if resource.path is None:
        continue
    for wire, entries in resource.properties.items():
        for column, sample in entries:
            if sample is None:
                continue
            if resource.path.startswith("/apis/p/"):
                send("PUT", "/apis/p", {"properties": RESOURCES["API"].base})
            body = {"properties": {**resource.base, wire: sample}}
            status, answer = send("PUT", resource.path, body)
            if column == REFUSED:
                targets = [d.get("target") for d in (answer or {}).get("error", {}).get("details", [])]
                check(status == 400 and f"properties.{wire}" in targets,
                      f"{name} {wire}={sample!r}: refused by name ({status}, {targets})")
            else:
                check(status in (200, 201), f"{name} {wire}={sample!r}: accepted ({status}, {answer})")
                if column == STORED:
                    status, got = send("GET", resource.path)
                    returned = (got or {}).get("properties", {}).get(wire)
                    check(returned == sample, f"{name} {wire}: returned as given ({returned!r})")

if failures:
    raise SystemExit(f"{len(failures)} failures:\n" + "\n".join(failures))
print("property table: every SDK property classified, documented and enforced")

"""The seed's flow through Microsoft's APIM SDK against a certgate node, over HTTPS, with the
SDK's HTTPS enforcement left on. Driven by tests/apim_sdk.rs, which starts the node and an mTLS
backend and passes what it computed in the environment. Exits non-zero at the first surprise."""
import base64
import json
import os
import time
import urllib.request

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models

env = os.environ


class CertgateToken:
    """A token credential that hands the SDK a certgate management token."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(open(env["CERTGATE_TOKEN_FILE"]).read().strip(), int(time.time()) + 3600)


client = ApiManagementClient(
    CertgateToken(), "00000000-0000-0000-0000-000000000000",
    base_url=env["CERTGATE_ADMIN_URL"], connection_verify=env["CERTGATE_CA_FILE"],
)
rg, service = "rg-certgate", "gw"


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def refused(call, error_type, status):
    try:
        call()
    except error_type as error:
        return error
    except HttpResponseError as error:
        raise SystemExit(f"FAILED: expected {status}, got {error.status_code}: {error.message}")
    raise SystemExit(f"FAILED: expected {status}, the call succeeded")


# Certificate upload: thumbprint, subject and expiry as the test computed them.
pfx = base64.b64encode(open(env["PFX_FILE"], "rb").read()).decode()
created = client.certificate.create_or_update(
    rg, service, "c1", models.CertificateCreateOrUpdateParameters(data=pfx, password=env["PFX_PASSWORD"]))
check(created.thumbprint == env["EXPECTED_THUMBPRINT"], f"thumbprint {created.thumbprint}")
check(created.subject == env["EXPECTED_SUBJECT"], f"subject {created.subject}")
check(int(created.expiration_date.timestamp()) == int(env["EXPECTED_NOT_AFTER"]), f"expiry {created.expiration_date}")
check(created.id.endswith(f"/providers/Microsoft.ApiManagement/service/{service}/certificates/c1"), f"ARM id {created.id}")
client.certificate.create_or_update(
    rg, service, "c2", models.CertificateCreateOrUpdateParameters(data=pfx, password=env["PFX_PASSWORD"]))

# Lists with $filter, and $top paging through nextLink.
names = [c.name for c in client.certificate.list_by_service(rg, service, top=1)]
# admin-tls is the certificate the HTTPS management listener serves.
check(names == ["admin-tls", "c1", "c2"], f"paged list, one per page {names}")
names = [c.name for c in client.certificate.list_by_service(rg, service, filter="name eq 'c2'")]
check(names == ["c2"], f"filtered list {names}")
check(client.certificate.get_entity_tag(rg, service, "c1"), "HEAD entity tag")

# A backend with TLS switches; PATCH with If-Match; a stale ETag is a 412.
backend = client.backend.create_or_update(rg, service, "orders", models.BackendContract(
    url=env["BACKEND_URL"], protocol="http",
    tls=models.BackendTlsProperties(validate_certificate_chain=False, validate_certificate_name=True)))
check(backend.tls.validate_certificate_chain is False, "backend chain validation off")
response = client.backend.get_entity_tag(rg, service, "orders", cls=lambda pipeline, _, headers: headers)
etag = response["ETag"]
updated = client.backend.update(rg, service, "orders", if_match=etag,
                                parameters=models.BackendUpdateParameters(description="Orders backend"))
check(updated.description == "Orders backend", "PATCH with If-Match")
stale = refused(lambda: client.backend.update(rg, service, "orders", if_match=etag,
                                              parameters=models.BackendUpdateParameters(description="again")),
                HttpResponseError, 412)
check(stale.status_code == 412, "a stale ETag is a 412")

# The API through the long-running call, its policy presenting c1, an operation with a policy.
api = client.api.begin_create_or_update(rg, service, "orders", models.ApiCreateOrUpdateParameter(
    display_name="Orders", path="orders", protocols=["http"], description="Orders API")).result()
check(api.path == "orders" and api.description == "Orders API" and api.is_current, "API created through the long-running operation")
policy = ('<policies><inbound><base /><set-backend-service backend-id="orders" />'
          '<authentication-certificate certificate-id="c1" /></inbound></policies>')
client.api_policy.create_or_update(rg, service, "orders", "policy",
                                   models.PolicyContract(value=policy, format="rawxml"))
check(client.api_policy.get(rg, service, "orders", "policy", format="rawxml").value == policy, "API policy as stored")
client.api_operation.create_or_update(rg, service, "orders", "list", models.OperationContract(
    display_name="List", method="GET", url_template="/items"))
client.api_operation_policy.create_or_update(rg, service, "orders", "list", "policy", models.PolicyContract(
    value="<policies><inbound><base /></inbound></policies>", format="rawxml"))
get = client.api_operation.create_or_update(rg, service, "orders", "get", models.OperationContract(
    display_name="Get", method="GET", url_template="/items/{id}", description="One item",
    template_parameters=[models.ParameterContract(name="id", type="string", required=True, description="Item id")]))
check([p.name for p in get.template_parameters] == ["id"] and get.description == "One item",
      "an operation with template parameters, returned as given")
undeclared = refused(lambda: client.api_operation.create_or_update(rg, service, "orders", "bad", models.OperationContract(
    display_name="Bad", method="GET", url_template="/items/{id}/{part}",
    template_parameters=[models.ParameterContract(name="id", type="string")])), HttpResponseError, 400)
check("part" in undeclared.message or "part" in str(undeclared), "an undeclared template parameter is a 400")
operations = sorted(o.name for o in client.api_operation.list_by_api(rg, service, "orders"))
check(operations == ["get", "list"], f"operations {operations}")

# The rest of what the SDK offers for these resources: get, list, entity tags, PATCH.
check(client.certificate.get(rg, service, "c2").thumbprint == env["EXPECTED_THUMBPRINT"], "certificate get")
check(client.backend.get(rg, service, "orders").url == env["BACKEND_URL"], "backend get")
check([b.name for b in client.backend.list_by_service(rg, service)] == ["orders"], "backend list")
check(client.api.get(rg, service, "orders").display_name == "Orders", "API get")
check(client.api.get_entity_tag(rg, service, "orders"), "API entity tag")
patched = client.api.update(rg, service, "orders", if_match="*", parameters=models.ApiUpdateContract(
    description="Orders API, v2", contact=models.ApiContactInformation(name="Orders team", email="orders@contoso.com")))
check(patched.description == "Orders API, v2" and patched.contact.email == "orders@contoso.com" and patched.path == "orders",
      "API PATCH keeps what it does not name")
check([a.name for a in client.api.list_by_service(rg, service)] == ["orders"], "API list")
check(client.api_operation.get(rg, service, "orders", "get").url_template == "/items/{id}", "operation get")
check(client.api_operation.get_entity_tag(rg, service, "orders", "get"), "operation entity tag")
renamed = client.api_operation.update(rg, service, "orders", "get", if_match="*",
                                      parameters=models.OperationUpdateContract(display_name="Get one"))
check(renamed.display_name == "Get one" and [p.name for p in renamed.template_parameters] == ["id"], "operation PATCH")
check([p.name for p in client.api_policy.list_by_api(rg, service, "orders").value] == ["policy"], "API policy list")
check(client.api_policy.get_entity_tag(rg, service, "orders", "policy"), "API policy entity tag")
check(client.api_operation_policy.get(rg, service, "orders", "list", "policy", format="rawxml").value
      == "<policies><inbound><base /></inbound></policies>", "operation policy get")
check(len(client.api_operation_policy.list_by_operation(rg, service, "orders", "list").value) == 1, "operation policy list")
check(client.api_operation_policy.get_entity_tag(rg, service, "orders", "list", "policy"), "operation policy entity tag")
client.api_operation_policy.delete(rg, service, "orders", "list", "policy", if_match="*")
check(client.api_operation_policy.list_by_operation(rg, service, "orders", "list").value == [], "operation policy deleted")
global_policy = "<policies><inbound><set-header name=\"x-via\" exists-action=\"override\"><value>certgate</value></set-header></inbound></policies>"
client.policy.create_or_update(rg, service, "policy", models.PolicyContract(value=global_policy, format="rawxml"))
check(client.policy.get(rg, service, "policy", format="rawxml").value == global_policy, "global policy as stored")
check(client.policy.get_entity_tag(rg, service, "policy"), "global policy entity tag")
check([p.name for p in client.policy.list_by_service(rg, service)] == ["policy"], "global policy list")
node = client.api_management_service.get(rg, service)
check(node.name == service and node.gateway_url == env["GATEWAY_URL"], f"the service resource ({node.gateway_url})")

# The backend sees c1 on a request through the gateway.
with urllib.request.urlopen(env["GATEWAY_URL"] + "/orders/items") as answer:
    seen = json.load(answer)
check(seen["fingerprint"] == env["EXPECTED_FINGERPRINT"], f"the backend saw c1 ({seen['fingerprint']})")

# Delete protection: refused with 409 naming the referrer, allowed once it is gone.
conflict = refused(lambda: client.certificate.delete(rg, service, "c1", if_match="*"), ResourceExistsError, 409)
check("/apis/orders/policies/policy" in conflict.message, f"409 names the referrer: {conflict.message}")
client.api_policy.delete(rg, service, "orders", "policy", if_match="*")
client.certificate.delete(rg, service, "c1", if_match="*")
left = [c.name for c in client.certificate.list_by_service(rg, service)]
check(left == ["admin-tls", "c2"], f"c1 deleted once unreferenced {left}")

# Deleting the rest: the global policy, an operation, the API (a long-running call) and the backend.
client.policy.delete(rg, service, "policy", if_match="*")
check(list(client.policy.list_by_service(rg, service)) == [], "global policy deleted")
client.api_operation.delete(rg, service, "orders", "list", if_match="*")
check([o.name for o in client.api_operation.list_by_api(rg, service, "orders")] == ["get"], "operation deleted")
client.api.begin_delete(rg, service, "orders", if_match="*", delete_revisions=True).result()
check([a.name for a in client.api.list_by_service(rg, service)] == [], "API deleted through the long-running call")
client.backend.delete(rg, service, "orders", if_match="*")
check([b.name for b in client.backend.list_by_service(rg, service)] == [], "backend deleted")


def write_vault_secret(data):
    """Writes a new version of the referenced KV v2 secret, as whoever rotates it would."""
    request = urllib.request.Request(
        env["VAULT_WRITE_URL"], data=json.dumps({"data": data}).encode(), method="POST",
        headers={"X-Vault-Token": env["VAULT_ROOT_TOKEN"], "Content-Type": "application/json"})
    urllib.request.urlopen(request).read()


# A vault reference: made through the SDK, then re-read on demand (refreshSecret) after the
# secret rotated; a broken version is reported in lastStatus and the last good one stays.
kv = client.certificate.create_or_update(rg, service, "kv", models.CertificateCreateOrUpdateParameters(
    key_vault=models.KeyVaultContractCreateProperties(secret_identifier=env["VAULT_SECRET_IDENTIFIER"])))
check(kv.thumbprint == env["VAULT_FIRST_THUMBPRINT"], f"vault reference read ({kv.thumbprint})")
check(kv.key_vault.secret_identifier == env["VAULT_SECRET_IDENTIFIER"], "the reference is returned, not the secret")
check(kv.key_vault.last_status.code == "Success", f"lastStatus {kv.key_vault.last_status.code}")
write_vault_secret(json.loads(env["VAULT_ROTATED_SECRET"]))
rotated = client.certificate.refresh_secret(rg, service, "kv")
check(rotated.thumbprint == env["VAULT_ROTATED_THUMBPRINT"], f"refreshSecret picked up the rotation ({rotated.thumbprint})")
check(rotated.key_vault.last_status.code == "Success" and rotated.key_vault.last_status.time_stamp_utc,
      "lastStatus after the rotation")
write_vault_secret({"pfx": "bm90IGEgcGZ4", "password": "vault-pass"})
broken = client.certificate.refresh_secret(rg, service, "kv")
check(broken.thumbprint == env["VAULT_ROTATED_THUMBPRINT"], "a broken version keeps the last good certificate")
check(broken.key_vault.last_status.code != "Success" and broken.key_vault.last_status.message,
      f"lastStatus says why: {broken.key_vault.last_status.code}: {broken.key_vault.last_status.message}")
print("seed flow through the APIM SDK: done")

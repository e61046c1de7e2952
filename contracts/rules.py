"""The wire contract's rules and limits, as data.

Every rule names its source (a tag from the fidelity table, ``docs/fidelity.md``), whether Adobe
refuses a request that breaks it (``error``) or the request only works against this fake
(``deviation``), the HTTP status the fake answers with, and how to fix a request that breaks it.
Validators, the fake and the Hypothesis strategies all read this one table, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["LIMITS", "RULES", "Judged", "Limits", "Rule", "Severity", "Violation", "rule"]


class Severity(StrEnum):
    """How Adobe treats a request that breaks a rule."""

    ERROR = "error"  #: Adobe refuses it; so does the fake.
    DEVIATION = "deviation"  #: undocumented; the fake accepts it, Adobe may not.


@dataclass(frozen=True, slots=True)
class Limits:
    """Documented numeric limits (sources in ``docs/fidelity.md``)."""

    single_get_bytes: int = 8 * 1024  # EL-SINGLE "8 KB for GET"
    single_post_bytes: int = 60 * 1024  # EL-SINGLE "60 KB for POST"
    third_party_id_max_chars: int = 256  # LIMITS, DELIVERY-OAS
    batch_max_bytes: int = 50_000_000  # EL-BULK "< 50 MB" (decimal megabytes: our choice)
    batch_max_rows: int = 500_000  # EL-BULK "should not exceed 500,000"
    bulk_calls_per_minute: int = 50  # LIMITS: 503 beyond it
    single_updates_per_day: int = 1_000_000  # EL-SINGLE, rolling 24 hours
    delivery_parameters_max: int = 50  # DELIVERY-OAS "Max 50 parameters limit" (per parameters map)
    parameter_name_chars: int = 128  # DELIVERY-OAS "Parameter name max length 128"
    mbox_parameter_value_chars: int = 5000  # DELIVERY-OAS "Parameter value length max 5000"
    profile_parameter_value_chars: int = 256  # LIMITS (corrected 2025-10-27): profile values for the Delivery API
    profile_data_bytes: int = 64 * 1024  # EL-BULK (since 2024-09-18): external profile data at most 64 KB


LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the contract."""

    id: str
    severity: Severity
    summary: str  #: what the rule says, in one line
    documented: str  #: what Adobe's documentation says (or that it is silent)
    fix: str  #: what the client should change
    source: str  #: source tags, see docs/fidelity.md
    status: int = 400  #: HTTP status the fake answers with when it refuses (errors only)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


@dataclass(frozen=True, slots=True)
class Violation:
    """A request (or part of one) that breaks a rule."""

    rule: Rule
    detail: str  #: what exactly was wrong, naming the parameter, row or header
    where: str = ""  #: e.g. ``row 3``, ``parameter mbox3rdPartyId``

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    @property
    def message(self) -> str:
        """The message the fake puts in its error body: rule id, then the detail."""
        return f"[{self.rule.id}] {self.detail}"

    def explain(self) -> str:
        """A multi-line explanation for humans: what broke, what Adobe documents, how to fix it."""
        return (
            f"{self.rule.severity} {self.rule.id}: {self.detail}\n"
            f"  Adobe documents: {self.rule.documented}\n"
            f"  Fix: {self.rule.fix}"
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule.id,
            "severity": str(self.rule.severity),
            "detail": self.detail,
            "where": self.where,
            "documented": self.rule.documented,
            "fix": self.rule.fix,
        }


class Judged:
    """Mixin for anything carrying ``violations``: its errors, deviations and verdict."""

    __slots__ = ()
    violations: list[Violation]

    @property
    def errors(self) -> list[Violation]:
        """The violations Adobe would refuse."""
        return [v for v in self.violations if v.rule.severity is Severity.ERROR]

    @property
    def deviations(self) -> list[Violation]:
        """The violations that only work against this fake."""
        return [v for v in self.violations if v.rule.severity is Severity.DEVIATION]

    @property
    def accepted(self) -> bool:
        return not self.errors


_E, _D = Severity.ERROR, Severity.DEVIATION

_RULE_LIST: tuple[Rule, ...] = (
    # --- single profile update -------------------------------------------------------------
    Rule("single.identifier-missing", _E, "A single update names the profile by mboxPC or mbox3rdPartyId.",
         "Parameters mboxPC=<tntId> or mbox3rdPartyId=<id> identify the profile.",
         "Add mboxPC=<tntId> or mbox3rdPartyId=<your customer id> to the request.", "EL-SINGLE"),
    Rule("single.no-attributes", _E, "A single update carries at least one profile.<name>=<value> parameter.",
         "Attributes are sent as profile.<paramName>=<value>.",
         "Send at least one parameter named profile.<name>.", "EL-SINGLE"),
    Rule("single.get-too-large", _E, "A GET single update is at most 8 KB.",
         "Size limits: 8 KB for GET, 60 KB for POST.",
         "Send the update as POST, or split the attributes over several calls.", "EL-SINGLE", 414),
    Rule("single.post-too-large", _E, "A POST single update is at most 60 KB.",
         "Size limits: 8 KB for GET, 60 KB for POST.",
         "Split the attributes over several calls, or use the bulk API.", "EL-SINGLE", 413),
    Rule("single.method", _E, "A single update is sent with GET or POST.",
         "Both GET and POST are supported.", "Use GET or POST.", "EL-SINGLE", 405),
    Rule("single.json-body", _D, "A single update's POST body is form-encoded, not JSON.",
         "Undocumented: the POST body encoding is not specified; JSON is not shown anywhere.",
         "Send the parameters in the query string or as an application/x-www-form-urlencoded body.",
         "EL-SINGLE (silent); a public client"),
    Rule("single.unknown-body", _E, "A single update's POST body is form-encoded.",
         "Undocumented beyond query-string parameters.",
         "Send the parameters in the query string or as an application/x-www-form-urlencoded body.",
         "EL-SINGLE (silent)", 415),
    Rule("single.both-identifiers", _D, "A single update names one identifier.",
         "Undocumented: sending both mboxPC and mbox3rdPartyId.",
         "Send only one of mboxPC and mbox3rdPartyId.", "EL-SINGLE (silent)"),
    Rule("single.unsupported-identifier", _D, "A single update does not take ECID-style identifiers.",
         "The Experience Cloud ID (ECID) is not supported; only mboxPC and mbox3rdPartyId are documented.",
         "Identify the profile by mboxPC or mbox3rdPartyId.", "TGT-METHODS-OLD, EL-SINGLE"),
    Rule("single.empty-value", _D, "An empty profile.<name>= value does not clear the attribute.",
         "Empty values never clear or delete an attribute (documented for the bulk API).",
         "Leave the parameter out; attributes cannot be deleted through the Profile APIs.", "EL-BULK 2025-10-28"),
    Rule("single.prefixless-parameter", _D, "Only profile.<name> parameters set attributes.",
         "Parameter format is profile.paramName.",
         "Prefix attribute parameters with profile.", "EL-SINGLE"),
    # --- identifiers ----------------------------------------------------------------------
    Rule("id.third-party-chars", _E, "mbox3rdPartyId / thirdPartyId contain no + and no /.",
         "The plus sign (+) and the forward slash (/) are not allowed in mbox3rdPartyId.",
         "Remove or replace + and / in your customer ids (e.g. hash or base64url them).",
         "EL-METHODS-BULK, TGT-METHODS-OLD"),
    Rule("id.third-party-length", _E, "mbox3rdPartyId / thirdPartyId are at most 256 characters.",
         "mbox3rdPartyId is limited to 256 characters (older pages say 128 or 60).",
         "Shorten the id to 256 characters or fewer.", "LIMITS, DELIVERY-OAS"),
    Rule("id.tnt-format", _D, "A tntId (mboxPC, pcId) looks like one Target issues: <digits>-<digits>, "
         "32 hex digits or digits, with an optional .<location hint>.",
         "tntId should not contain a '.' unless the dot delimits the location hint; examples "
         "1368007744041-575948.01_00, 10abf6304b2714215b1fd39a870f01afc.28_20, 123.35_0.",
         "Send the tntId exactly as Target issued it (e.g. 1368007744041-575948.01_00).",
         "DELIVERY-OAS, EL-FETCH, EL-BULK"),
    Rule("id.empty", _E, "An identifier is not empty.", "An id names the profile to update.",
         "Send a non-empty id.", "EL-SINGLE, EL-BULK"),
    # --- bulk update ----------------------------------------------------------------------
    Rule("batch.missing-prefix", _E, "The batch file starts with batch=.",
         "The batch= parameter is required and must be specified at the beginning of the file.",
         "Start the request body with batch= followed by the CSV header line.", "EL-BULK 2024-05-29"),
    Rule("batch.empty", _E, "The batch file has a header line.", "First row = column headers.",
         "Send batch=pcId,<attr>... or batch=thirdPartyId,<attr>... followed by the rows.", "EL-BULK"),
    Rule("batch.bad-key-header", _E, "The first header is pcId or thirdPartyId.",
         "The first column header must be pcId or thirdPartyId; the Marketing Cloud visitor ID is not supported.",
         "Name the first column pcId (Target ids) or thirdPartyId (your customer ids).", "EL-BULK"),
    Rule("batch.no-attribute-headers", _E, "The batch header names at least one attribute.",
         "Other headers are profile parameter names.", "Add attribute columns after the id column.", "EL-BULK"),
    Rule("batch.too-large", _E, "A batch file is under 50 MB.", "The batch file must be smaller than 50 MB.",
         "Split the file into several batches of under 50 MB each.", "EL-BULK", 413),
    Rule("batch.too-many-rows", _E, "A batch file has at most 500,000 rows.",
         "The number of rows should not exceed 500,000 per upload.",
         "Split the file into several batches of at most 500,000 rows each.", "EL-BULK"),
    Rule("batch.raw-ampersand", _E, "Cells are percent-encoded: no raw &.",
         "Parameters and values must be URL-encoded (UTF-8); the body is read as a form, where & ends the batch field.",
         "Percent-encode every cell (& becomes %26), e.g. urllib.parse.quote(value, safe='').", "EL-BULK, INFERENCE"),
    Rule("batch.bad-encoding", _E, "Cells decode to UTF-8 text.",
         "Parameters and values must be URL-encoded using UTF-8.",
         "Encode the text as UTF-8 before percent-encoding it.", "EL-BULK"),
    Rule("batch.unterminated-quote", _E, "A quoted cell ends on its own line.",
         "Undocumented: quoting; cells are percent-encoded, so raw line breaks never occur in a cell.",
         "Percent-encode line breaks (%0A) instead of quoting them.", "EL-BULK (silent)"),
    Rule("batch.third-party-id", _E, "thirdPartyId cells follow the mbox3rdPartyId rules.",
         "The plus sign (+) and the forward slash (/) are not allowed in mbox3rdPartyId; at most 256 characters.",
         "Remove + and / from the ids and keep them to 256 characters.", "EL-METHODS-BULK, LIMITS"),
    Rule("batch.raw-plus", _D, "Cells are percent-encoded: no raw +.",
         "Values must be URL-encoded; a form reader turns a raw + into a space.",
         "Percent-encode + as %2B (and space as %20).", "EL-BULK, INFERENCE"),
    Rule("batch.raw-percent", _D, "Cells are percent-encoded: no raw % outside an escape.",
         "Values must be URL-encoded; a lone % is not a valid escape.",
         "Percent-encode % as %25.", "EL-BULK, INFERENCE"),
    Rule("batch.raw-non-ascii", _D, "Cells are percent-encoded: no raw non-ASCII characters.",
         "Parameters and values must be URL-encoded using UTF-8.",
         "Percent-encode the UTF-8 bytes of the value (urllib.parse.quote(value, safe='')).", "EL-BULK"),
    Rule("batch.quoted-cell", _D, "Cells are percent-encoded, not CSV-quoted.",
         "Undocumented: CSV quoting. Commas in values are encoded as %2C.",
         "Percent-encode commas and quotes instead of quoting the cell.", "EL-BULK (silent)"),
    Rule("batch.whitespace", _D, "Cells have no spaces around the commas.",
         "The current sample has no spaces; older samples had a space after each comma.",
         "Remove the spaces around commas (encode meaningful spaces as %20).", "EL-BULK 2024-05-29"),
    Rule("batch.profile-prefix", _D, "Attribute headers carry no profile. prefix.",
         "Other headers are plain paramName; they appear in Target as profile.paramName.",
         "Drop the profile. prefix from the header names.", "EL-BULK, IO-1.4"),
    Rule("batch.duplicate-header", _D, "Attribute headers are unique.", "Undocumented.",
         "Name each attribute column once.", "EL-BULK (silent)"),
    Rule("batch.empty-header", _D, "Every attribute header has a name.", "Undocumented: empty header cells.",
         "Name every column, or drop the unnamed ones; their cells are ignored here.", "EL-BULK (silent)"),
    Rule("batch.long-row", _D, "A row has no more cells than the header.", "Undocumented: rows longer than the header.",
         "Remove the extra cells, or add the missing headers.", "EL-BULK (silent)"),
    Rule("batch.duplicate-id", _D, "An id appears in one row of a batch.",
         "Undocumented; an old sample repeats an id. Here later rows win, attribute by attribute.",
         "Merge the rows for one profile into one row.", "IO-1.4 (sample)"),
    Rule("batch.row-without-id", _D, "Every row has an id.", "Undocumented; here such a row counts as a failed update.",
         "Drop rows that have no id.", "EL-BULK (silent)"),
    Rule("batch.header-only", _D, "A batch has data rows.", "Undocumented; here it is accepted and skipped.",
         "Do not submit empty batches. A file sent with curl -d @file loses its line breaks (curl strips them): "
         "send files with curl --data-binary @file.", "EL-BULK (silent)"),
    Rule("batch.content-type", _D, "The batch body is sent as application/x-www-form-urlencoded.",
         "curl --data-binary (the documented request) sends application/x-www-form-urlencoded; "
         "no other content type is documented.",
         "Send the file as the raw body with Content-Type: application/x-www-form-urlencoded.",
         "EL-BULK, COMMUNITY-752595"),
    Rule("batch.multipart", _D, "The batch file is the raw body, not a multipart upload.",
         "There is no multipart upload and no file field name.",
         "Send the file itself as the body (curl --data-binary @file).", "EL-BULK"),
    Rule("batch.form-encoded-file", _E, "The batch file is the body itself, not a form-encoded field.",
         "The body is the file: batch= then the header line and one line per row, with each cell URL-encoded "
         "(curl --data-binary @file); the commas and line breaks between cells are not encoded.",
         "Send the file's own bytes as the body (requests.post(url, data=file_bytes) or curl --data-binary @file), "
         "starting batch=, instead of data={'batch': text}, which form-encodes the whole file. A multipart upload "
         "(files={'batch': file}) also works here, though Adobe documents only the raw body.",
         "EL-BULK 2024-05-29, COMMUNITY-752595"),
    Rule("batch.ecid-key", _E, "The batch key is not the Marketing Cloud visitor ID.",
         "The Marketing Cloud visitor ID is not supported as a batch key.",
         "Key the batch by pcId or thirdPartyId.", "EL-BULK"),
    Rule("batch.method", _E, "A batch is submitted with POST.", "Make an HTTP POST request.",
         "Send the batch with POST.", "EL-BULK", 405),
    Rule("status.missing-batch-id", _E, "A batch status request names batchId.",
         "GET <batchStatus URL> as returned by the submit call.",
         "Follow the batchStatus URL from the submit response verbatim.", "EL-BULK"),
    Rule("status.method", _E, "A batch status request is a GET.",
         "GET <batchStatus URL> as returned by the submit call.",
         "Poll the batchStatus URL with GET.", "EL-BULK; status is our choice", 405),
    Rule("status.unknown-batch", _E, "A batch status request names a known, unexpired batch.",
         "Undocumented; old docs keep the last 10 statuses for at most 24 hours.",
         "Use the batchStatus URL of a batch submitted to this client within the retention period.",
         "IO-1.4 (retention); our choice", 404),
    # --- rate limits ----------------------------------------------------------------------
    Rule("rate.bulk", _E, "At most 50 bulk API calls per minute per client.",
         "50 calls per minute; above that Target returns HTTP 503.",
         "Throttle bulk calls; back off and retry after a minute on 503.", "LIMITS", 503),
    Rule("rate.single", _E, "At most 1,000,000 single updates in any rolling 24 hours.",
         "1,000,000 updates in a rolling 24-hour period; the answer beyond it is undocumented.",
         "Use the bulk API for large volumes, or spread the updates out.", "EL-SINGLE; status is our choice", 429),
    # --- fetch ----------------------------------------------------------------------------
    Rule("fetch.missing-client", _D, "A profile fetch names the client in ?client=<code>.",
         "GET /rest/v1/profiles/...?client=<clientCode>.",
         "Add ?client=<your client code> to the fetch URL.", "EL-FETCH"),
    Rule("fetch.method", _E, "A profile fetch is a GET.", "The HTTP method must be GET.", "Use GET.", "EL-FETCH", 405),
    # --- authentication -------------------------------------------------------------------
    Rule("auth.missing-token", _E, "With authentication on, profile API calls carry a Bearer token.",
         "Once authentication is on, all profile API requests must have the profile authentication token "
         "in the request headers: Authorization: Bearer <token>.",
         "Send Authorization: Bearer <token>, with the token from the Admin API "
         "(GET https://mc.adobe.io/<tenant>/target/authentication/token?authorizationScope=profile_api).",
         "EL-FETCH, EL-SETTINGS; status is our choice", 401),
    Rule("auth.invalid-token", _E, "The Bearer token is the tenant's current, unexpired token.",
         "Regenerating a token invalidates the previous one; tokens expire.",
         "Fetch the current token from the Admin API and send it as Authorization: Bearer <token>.",
         "EL-SETTINGS; status is our choice", 401),
    Rule("auth.access-token-header", _D, "The token travels in the Authorization header.",
         "Header \"Authorization\" : \"Bearer <token>\"; an access_token header is not documented.",
         "Send Authorization: Bearer <token> instead of access_token: <token>.", "EL-SETTINGS; a public client"),
    Rule("token.scope", _E, "The token route's authorizationScope is profile_api or debug_tools.",
         "authorizationScope enum: profile_api, debug_tools.",
         "Send ?authorizationScope=profile_api.", "ADMIN-OAS"),
    Rule("token.method", _E, "The token route is read with GET and renewed with POST.",
         "GET retrieves the existing token; POST creates a new one.",
         "Use GET to read the token, POST to issue a new one.", "ADMIN-OAS; status is our choice", 405),
    Rule("token.scope-alias", _D, "The token route's parameter is authorizationScope.",
         "The Admin API spec names the parameter authorizationScope; scope= is not documented.",
         "Send ?authorizationScope=profile_api instead of ?scope=profile_api.", "ADMIN-OAS; a public client"),
    Rule("profile.size", _D, "A profile's attribute data stays within 64 KB.",
         "The external profile data (Customer Attributes, Profile API, in-mbox profile parameters, profile "
         "scripts) must not exceed 64 KB; what Target does beyond it is undocumented.",
         "Send fewer or shorter attributes; keep large data outside Target and send a key.", "EL-BULK 2024-09-18"),
    # --- Delivery API ---------------------------------------------------------------------
    Rule("delivery.session-id", _E, "A delivery call names its session in ?sessionId=.",
         "sessionId is required: any printable string without space, ? or /, 1 to 128 characters.",
         "Add ?sessionId=<id> (keep it for the visitor's session), e.g. a UUID without dashes.",
         "DELIVERY-OAS, EL-DELIVERY-ID"),
    Rule("delivery.json-body", _E, "A delivery call's body is a JSON DeliveryRequest object.",
         "POST a JSON DeliveryRequest (Content-Type: application/json).",
         "Send a JSON object with at least a context: {\"context\": {\"channel\": \"web\"}}.", "DELIVERY-OAS"),
    Rule("delivery.method", _E, "A delivery call is a POST.", "POST /rest/v1/delivery.", "Use POST.",
         "DELIVERY-OAS", 405),
    Rule("delivery.too-large", _E, "A delivery call's body is at most 1 MiB (the fake's own bound).",
         "Undocumented; DeliveryRequest bodies are small JSON documents.",
         "Request fewer mboxes per call.", "DELIVERY-OAS (silent); our choice", 413),
    Rule("delivery.content-type", _D, "A delivery call is sent as application/json.",
         "The request body is application/json.", "Send Content-Type: application/json.", "DELIVERY-OAS"),
    Rule("delivery.context", _E, "A delivery call carries a context with a channel.",
         "context is required; context.channel is required.",
         "Add \"context\": {\"channel\": \"web\"} (or \"mobile\").", "DELIVERY-OAS, EL-DELIVERY-ID"),
    Rule("delivery.channel", _E, "context.channel is web or mobile.", "ChannelType enum: web, mobile.",
         "Send \"channel\": \"web\" or \"mobile\".", "DELIVERY-OAS"),
    Rule("delivery.field", _E, "The delivery request's fields have the types the description gives.",
         "DeliveryRequest: id, execute and prefetch are objects, mboxes and views lists, ids and names strings; "
         "requestId at most 128 characters.",
         "Send each field with the type of Adobe's Delivery API description.", "DELIVERY-OAS"),
    Rule("delivery.id-length", _E, "tntId and marketingCloudVisitorId are at most 128 characters.",
         "VisitorId: tntId and marketingCloudVisitorId have a maximum length of 128.",
         "Send the id exactly as Target or the ECID service issued it.", "DELIVERY-OAS"),
    Rule("delivery.customer-id", _E, "Each customerIds entry has id, integrationCode and authenticatedState.",
         "CustomerId: id (max 128), integrationCode (max 50) and authenticatedState (unknown, authenticated, "
         "logged_out) are required.",
         "Send {\"id\": ..., \"integrationCode\": <the customer attribute alias>, \"authenticatedState\": "
         "\"authenticated\"}.", "DELIVERY-OAS, EL-DELIVERY-ID"),
    Rule("delivery.customer-ids-without-ecid", _E, "customerIds come with a marketingCloudVisitorId.",
         "When sending customerIds, the marketingCloudVisitorId must also be provided.",
         "Add id.marketingCloudVisitorId, or send your customer id as id.thirdPartyId.", "EL-DELIVERY-ID"),
    Rule("delivery.mbox-name", _E, "Every requested mbox has a name.", "MboxRequest: name identifies the mbox.",
         "Give each entry of mboxes a \"name\".", "DELIVERY-OAS"),
    Rule("delivery.mbox-index", _D, "Mbox indexes are unique within a list.",
         "Index should be unique in the mbox list (it correlates requests and responses).",
         "Number the mboxes 1, 2, 3, ... within execute.mboxes and prefetch.mboxes.", "DELIVERY-OAS"),
    Rule("delivery.parameter-count", _E, "A parameters or profileParameters map has at most 50 entries.",
         "Max 50 parameters limit (for both mbox and profile parameters).",
         "Send at most 50 profile parameters per mbox; use the bulk API for more attributes.",
         "DELIVERY-OAS, LIMITS"),
    Rule("delivery.parameter-name", _E, "Parameter names are not blank and at most 128 characters.",
         "Parameter name should not be blank; parameter name max length 128.",
         "Name every parameter, in at most 128 characters.", "DELIVERY-OAS, LIMITS"),
    Rule("delivery.profile-prefix", _E, "Parameter names do not start with profile.",
         "Parameter name should not start with 'profile.'.",
         "Put profile attributes in profileParameters under their plain names (tier, not profile.tier).",
         "DELIVERY-OAS"),
    Rule("delivery.reserved-parameter", _E, "orderId, orderTotal and productPurchasedIds are not mbox parameters.",
         "Following names are not allowed for mbox parameters: orderId, orderTotal, productPurchasedIds.",
         "Send them in the mbox's order object (id, total, purchasedProductIds).", "DELIVERY-OAS"),
    Rule("delivery.parameter-value", _E, "Parameter values are strings (mbox parameters up to 5000 characters).",
         "Parameters map of string to string; value length max 5000; a profile value cannot be null.",
         "Send every value as a string.", "DELIVERY-OAS, LIMITS"),
    Rule("delivery.profile-value-length", _E, "A profile parameter value is at most 256 characters.",
         "Profile parameter values for the Delivery API: max 256 characters (the description says 5000; "
         "the limits page was corrected to 256 on 2025-10-27).",
         "Shorten the value to 256 characters, or store it elsewhere and send a key.", "LIMITS, DELIVERY-OAS"),
    Rule("delivery.parameter-type", _D, "Parameter values are JSON strings, not numbers or booleans.",
         "Parameters are a map of string to string.",
         "Send \"visits\": \"3\", not \"visits\": 3.", "DELIVERY-OAS"),
    Rule("delivery.missing-client", _D, "A delivery call names the client in ?client=<code>.",
         "POST /rest/v1/delivery?client=<clientCode>&sessionId=<id>; Adobe's SDKs send imsOrgId instead.",
         "Add ?client=<your client code> to the URL (or call <clientCode>.tt.omtrdc.net).",
         "EL-DELIVERY-ID, SDK-PY"),
    # --- hosts and tenants ----------------------------------------------------------------
    Rule("tenant.literal-client", _D, "The m2 path names the client code.",
         "Adobe's examples use the literal /m2/client/ with the client code in the host; "
         "whether the server accepts it is undocumented.",
         "Put your client code in the path: /m2/<clientCode>/...", "EL-SINGLE, EL-BULK"),
    Rule("tenant.unknown", _D, "Requests go to a client code the test set up.",
         "Not an Adobe rule: the fake's own check. Adobe documents the client code in the host and the "
         "/m2/<clientCode>/ path, not how Target answers a client code that does not exist; the fake serves any "
         "client code as a new, empty tenant.",
         "Send to the test's client code (the marker's client_code=, or a tenant seeded or configured through the "
         "handle); a test that uses another client code on purpose allows the rule: allow('tenant.unknown').",
         "EL-SINGLE, EL-BULK (silent); the fake's own check"),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULE_LIST}


def rule(rule_id: str) -> Rule:
    """The rule with this id; ``KeyError`` names the known ids when there is none."""
    try:
        return RULES[rule_id]
    except KeyError:
        raise KeyError(f"no rule {rule_id!r}; known rules: {', '.join(sorted(RULES))}") from None

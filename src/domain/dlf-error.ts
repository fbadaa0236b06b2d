/**
 * The one error type of opendlf. Every failure the API reports carries a code from
 * {@link ERROR_REGISTRY}; the registry fixes the HTTP status and the default message, so a code can
 * never be answered with two different statuses. The http layer is the only place that turns a
 * DlfError into a response body (`{"error_code","error_msg","errors":[…]}`).
 *
 * DLF.* codes and messages come from the official page "DataArts Factory Error Codes"
 * (docs/compatibility.md §2 lists every code used and where it comes from). APIGW.* codes are the
 * ones the Huawei API gateway answers for routing, size, authentication and throttling problems.
 * OPENDLF.* codes are this server's own, used only where no documented code fits.
 */
export const ERROR_REGISTRY = {
  'DLF.0201': { status: 400, message: 'The script fails to be created.' },
  'DLF.0202': { status: 400, message: 'The script name has been used by another script.' },
  'DLF.0203': { status: 400, message: 'The script fails to be modified.' },
  'DLF.6201': { status: 400, message: 'The script does not exist.' },
  'DLF.6205': { status: 400, message: 'The script execution instance does not exist.' },
  'DLF.6247': { status: 400, message: 'The script type is not specified.' },
  'DLF.6253': { status: 400, message: 'The script quota has reached the upper limit.' },
  'DLF.6322': { status: 400, message: 'The data connection does not exist.' },
  'DLF.6271': { status: 400, message: 'Each user can create only one DLI connection.' },
  'DLF.6309': { status: 400, message: 'The connection name has been used by another connection.' },
  'DLF.6323': { status: 400, message: 'The connection type cannot be modified.' },
  'DLF.6418': {
    status: 400,
    message:
      'Either the DWS cluster name or the access address and port number of the cluster must be configured.',
  },
  'DLF.0803': { status: 400, message: 'The OBS path is invalid.' },
  'DLF.0815': { status: 400, message: 'The OBS file fails to be accessed.' },
  'DLF.20810': { status: 400, message: 'The task does not exist.' },
  /** Role or project violations. DataArts answers 400; the security spec of opendlf asks for 403. */
  'DLF.6888': { status: 403, message: 'Invalid account permissions.' },
  'DLF.0819': { status: 400, message: 'The workspace ID does not exist.' },
  'DLF.3051': { status: 400, message: 'The request parameter is invalid.' },
  'APIGW.0101': {
    status: 404,
    message: 'The API does not exist or has not been published in the environment.',
  },
  'APIGW.0201': { status: 413, message: 'Request entity too large.' },
  /** The HTTP parser refused the request headers as too large (Node's limit, 16 KB by default). */
  'OPENDLF.0431': { status: 431, message: 'The request header fields are too large.' },
  /** The request headers or body did not arrive within the server's request timeout. */
  'OPENDLF.0408': { status: 408, message: 'The request was not received in time.' },
  /** An `Expect` header other than 100-continue. */
  'OPENDLF.0417': { status: 417, message: 'The expectation given in the Expect header cannot be met.' },
  /** Missing, malformed, expired or wrong credentials (the gateway's code for IAM failures). */
  'APIGW.0301': { status: 401, message: 'Incorrect IAM authentication information.' },
  /** Too many failed authentications from one client address or for one access key (APIG's throttling code). */
  'APIGW.0308': { status: 429, message: 'The throttling threshold has been reached.' },
  /** A connection exists but cannot run this script type (no engine, or the type does not match). */
  'OPENDLF.0601': { status: 400, message: 'The script type cannot be executed on this connection.' },
  /** `ischeck=true`: the connection could not be reached or logged in to. */
  'OPENDLF.0602': { status: 400, message: 'The connection test failed.' },
  /** The connection type is stored but this server has no engine for it. */
  'OPENDLF.0603': { status: 400, message: 'This connection type is not supported by this server.' },
  /** Review is enabled in the workspace and the script is not approved. */
  'OPENDLF.0604': { status: 400, message: 'The script is not approved for execution.' },
  /** An edit changes where a connection's secret would be sent but sends the secret masked or not at all. */
  'OPENDLF.0610': {
    status: 400,
    message: "The connection's target changed: the password (and key) must be given again.",
  },
  /** The connection's address and port are refused by the server's connection target rules. */
  'OPENDLF.0611': { status: 400, message: 'The connection target is not allowed on this server.' },
  /** A connection import archive exceeds the entry count or byte limits, or is not a valid zip. */
  'OPENDLF.0612': { status: 400, message: 'The import archive is refused.' },
  /** A `#{…}` in a parameter or environment variable cannot be parsed or evaluated (the message names the part). */
  'OPENDLF.0620': { status: 400, message: 'The EL expression is invalid.' },
  /** Extension: the workspace has no environment variable of that name. */
  'OPENDLF.0621': { status: 400, message: 'The environment variable does not exist.' },
  /** Extension: an execute's Idempotency-Key was used within 24 h with a different request body. */
  'OPENDLF.0640': {
    status: 400,
    message: 'The Idempotency-Key was already used with a different request for this script.',
  },
  /** Extension (results API): the instance has no statement result with that index. */
  'OPENDLF.0650': { status: 400, message: 'The statement result does not exist.' },
  /** Extension (results API): the instance has not settled yet; its results are read once it has. */
  'OPENDLF.0651': { status: 400, message: 'The script instance has not finished yet.' },
  /**
   * Extension (results API): the statement's result was capped and its rows past the caps were not
   * kept (spills off, the spill could not be written, or it is on another node's disk).
   */
  'OPENDLF.0652': {
    status: 400,
    message: 'The full result of this statement was not kept: only its capped rows are in the instance.',
  },
  /** Extension (live logs): the instance's script is not Shell or PYTHON, whose runs keep no log. */
  'OPENDLF.0660': { status: 400, message: 'Live logs exist only for Shell and PYTHON script instances.' },
  /** Extension (live logs): this node already serves its maximum of open log streams. */
  'OPENDLF.0661': { status: 503, message: 'Too many log streams are open on this server; retry later.' },
  /** The server is shutting down and accepts no new executions. */
  'OPENDLF.0503': { status: 503, message: 'The server is shutting down.' },
  /**
   * The shared PostgreSQL store could not be reached or did not answer within its deadline
   * (storeConnectTimeoutMs, storeQueryTimeoutMs); the call may be retried, on another node too.
   */
  'OPENDLF.0504': { status: 503, message: 'The store is unavailable.' },
  /**
   * The server's disk (or its store's) is full: the request could not be saved. 507 Insufficient
   * Storage (RFC 4918): a 5xx clients retry, naming the cause; it clears once space is freed.
   */
  'OPENDLF.0507': {
    status: 507,
    message: "The server's storage is full; the request could not be saved. Retry once space is freed.",
  },
  /** Anything unexpected: logged with the request id, answered without internals. */
  'OPENDLF.0500': { status: 500, message: 'Internal server error.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type DlfErrorCode = keyof typeof ERROR_REGISTRY;

export class DlfError extends Error {
  readonly code: DlfErrorCode;
  readonly httpStatus: number;

  /** @param detail replaces the registry's default message when given (it should still be user-safe). */
  constructor(code: DlfErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ?? ERROR_REGISTRY[code].message, options);
    this.name = 'DlfError';
    this.code = code;
    this.httpStatus = ERROR_REGISTRY[code].status;
  }
}

/** Shorthand for the generic validation error with a message that says what was wrong. */
export function invalidParameter(detail: string): DlfError {
  return new DlfError('DLF.3051', `The request parameter is invalid: ${detail}`);
}

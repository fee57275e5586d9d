// Errors the gateway answers with, in OpenAI's shape:
//   {"error":{"message":…,"type":"invalid_request_error","param":…,"code":…}}

export type ApiErrorType = 'invalid_request_error' | 'server_error'

export interface ApiErrorBody {
  error: { message: string, type: ApiErrorType, param: string | null, code: string | null }
}

export class ApiError extends Error {
  override name = 'ApiError'
  constructor (
    readonly status: number,
    message: string,
    readonly type: ApiErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null
  ) { super(message) }

  body (): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }

  /** the label of the `strata_errors_total` counter */
  get kind (): string {
    return this.code ?? this.type
  }
}

/** 400: a missing, mistyped or out-of-range request field. */
export class InvalidRequestError extends ApiError {
  override name = 'InvalidRequestError'
  constructor (message: string, param: string | null = null, code: string | null = 'invalid_request') {
    super(400, message, 'invalid_request_error', param, code)
  }
}

/** 400: prompt plus requested tokens exceed the model's positions. */
export class ContextLengthError extends InvalidRequestError {
  override name = 'ContextLengthError'
  constructor (maxPositions: number, promptTokens: number, maxTokens: number) {
    super(`This model's maximum context length is ${maxPositions} tokens, however you requested ${promptTokens + maxTokens} tokens ` +
      `(${promptTokens} in the prompt, ${maxTokens} for the completion). Please reduce the prompt or max_tokens.`, 'max_tokens', 'context_length_exceeded')
  }
}

/** 404: a model this gateway does not serve. */
export class ModelNotFoundError extends ApiError {
  override name = 'ModelNotFoundError'
  constructor (model: string, served: string) {
    super(404, `The model '${model}' does not exist; this gateway serves '${served}'`, 'invalid_request_error', 'model', 'model_not_found')
  }
}

/** 503: the swarm cannot serve the request right now (no chain of peers, peers failing). */
export class SwarmUnavailableError extends ApiError {
  override name = 'SwarmUnavailableError'
  constructor (message: string, code: string) {
    super(503, message, 'server_error', null, code)
  }
}

/** The client closed the connection before the answer was complete. */
export class ClientDisconnectedError extends Error {
  override name = 'ClientDisconnectedError'
  constructor () { super('the client closed the connection') }
}

// Errors raised while reading model directories and building or running span graphs.

/** Base class: something about the model files or config is wrong or unsupported. */
export class ModelError extends Error {
  override name = 'ModelError'
}

/** config.json is missing, malformed, or names something we do not implement. */
export class ModelConfigError extends ModelError {
  override name = 'ModelConfigError'
  constructor (readonly field: string, message: string) {
    super(`config.json: ${field}: ${message}`)
  }
}

/** generation_config.json is malformed or holds a field strata reads with a wrong value. */
export class GenerationConfigError extends ModelError {
  override name = 'GenerationConfigError'
  constructor (readonly field: string, message: string) {
    super(`generation_config.json: ${field}: ${message}`)
  }
}

/** A safetensors file is truncated, lies about sizes, or holds an unsupported dtype. */
export class SafetensorsError extends ModelError {
  override name = 'SafetensorsError'
  constructor (readonly file: string, message: string) {
    super(`${file}: ${message}`)
  }
}

/** A tensor the model needs is absent or has the wrong shape. */
export class MissingTensorError extends ModelError {
  override name = 'MissingTensorError'
}

/** A request does not fit the model: too many positions, wrong hidden size, unknown session. */
export class EngineInputError extends Error {
  override name = 'EngineInputError'
}

// Bad input: an error in what the user gave us (their model, data or campaign file). Retrying
// cannot help, so a stage that throws one fails at once (non-retryable `BadInput`), naming the
// field or layer and the fix. Errors reading one of *our own* artifacts are not bad input: they
// are retried (the file may be re-made, re-fetched or be on a disk that comes back).

export class BadInputError extends Error {
  override name = 'BadInputError';
}

/** The campaign file: a field is missing, out of range or inconsistent. */
export class CampaignError extends BadInputError {
  override name = 'CampaignError';
}

/** The user's dataset: files missing, unreadable, or inconsistent with the model. */
export class DataError extends BadInputError {
  override name = 'DataError';
}

/** The user's model: unreadable, or a layer or configuration we cannot prune or train. */
export class ModelError extends BadInputError {
  override name = 'ModelError';
}

/** Whether `e` is bad input. */
export function isBadInput(e: unknown): e is BadInputError {
  return e instanceof BadInputError;
}

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

/**
 * A fault of the machine, not of the input: a full disk (ENOSPC, EDQUOT, EFBIG), an I/O error (EIO),
 * an artifact store that does not answer. Retried by the stage's policy; the message says what is
 * full or away and where, so whoever reads it can free space or bring the store back.
 */
export class TransientIOError extends Error {
  override name = 'TransientIOError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

const TRANSIENT_CODES: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file size limit reached',
  EIO: 'I/O error',
  EROFS: 'read-only file system',
  ENOMEM: 'out of memory',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files on the system',
};

/**
 * An OS error of a write/read at `where` as a TransientIOError when it is a machine fault (disk
 * full, I/O error), naming what is full; other errors are returned unchanged.
 */
export function classifyIOError(e: unknown, where: string): unknown {
  const code = (e as { code?: string })?.code;
  if (code && code in TRANSIENT_CODES) {
    return new TransientIOError(`${where}: ${TRANSIENT_CODES[code]} (${code}): free space or fix the disk; the stage is retried`, code);
  }
  return e;
}

/** An error as a person reads it: the sentence, what to do, and the code in small print. */
import type { ReadableError } from './errors.js';

export function ErrorBanner({ error, onDismiss }: { error: ReadableError; onDismiss?: () => void }) {
  return (
    <div className="error-banner" role="alert">
      <p className="error-message">{error.message}</p>
      {error.hint ? <p className="error-hint">{error.hint}</p> : null}
      {error.detail ? <p className="error-detail">{error.detail}</p> : null}
      {onDismiss ? (
        <button className="quiet dismiss" onClick={onDismiss} aria-label="Dismiss">
          ×
        </button>
      ) : null}
    </div>
  );
}

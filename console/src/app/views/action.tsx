import { useState } from "preact/hooks";
import { errorText } from "../hub.js";

/**
 * An operator action on one row: the button asks for a reason (kept in the person's log with
 * the operator's name), then runs; the hub's refusal, if any, is shown as it said it.
 */
export function Action(props: {
  label: string;
  /** What the operator asserts by acting, shown before the reason is asked. */
  warning: string;
  /** One more thing the operator must give (e.g. a certificate number), passed to run. */
  extra?: { name: string; placeholder: string };
  run: (reason: string, extra: string) => Promise<void>;
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const [extra, setExtra] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  if (!open)
    return (
      <button type="button" disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}
      </button>
    );
  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await props.run(reason.trim(), extra.trim());
      setOpen(false);
      setReason("");
      setExtra("");
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="action" onSubmit={confirm}>
      <p class="warning">{props.warning}</p>
      {props.extra && (
        <input
          name={props.extra.name}
          aria-label={props.extra.name}
          placeholder={props.extra.placeholder}
          value={extra}
          onInput={(e) => setExtra(e.currentTarget.value)}
        />
      )}
      <input
        name="reason"
        aria-label="reason"
        placeholder="reason (ticket, what was checked)"
        value={reason}
        maxLength={256}
        onInput={(e) => setReason(e.currentTarget.value)}
      />
      <button
        type="submit"
        disabled={
          busy || reason.trim() === "" || (props.extra !== undefined && extra.trim() === "")
        }
      >
        Confirm {props.label.toLowerCase()}
      </button>
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "./hub.js";

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  /** Loads again now (after an action). */
  refresh: () => Promise<void>;
}

/** Loads now and every `ms` while the view is shown; keeps the last data through an error. */
export function usePoll<T>(load: () => Promise<T>, ms: number, key: string): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const loadRef = useRef(load);
  loadRef.current = load;
  const refresh = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(undefined);
    } catch (err) {
      setError(errorText(err));
    }
  }, [key]);
  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), ms);
    return () => clearInterval(timer);
  }, [refresh, ms]);
  return { data, error, refresh };
}

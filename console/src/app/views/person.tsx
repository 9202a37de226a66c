import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { IdentitySchema, IdType, Sex } from "@evc-interop/gen/evc/common/v1/identity_pb";
import type { Event as LogEvent } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { useState } from "preact/hooks";
import { enumName, when } from "../format.js";
import { errorText, type Hub } from "../hub.js";

/** What an event says, without the identities it carries (the operator typed one already). */
function summary(data: JsonObject | undefined): string {
  return data ? JSON.stringify(data, (k, v: unknown) => (k === "identity" ? undefined : v)) : "";
}

/**
 * One person's audit trail: every event of their stream, in order, with who acted and why. The
 * hub records this read in its access log under the operator's name.
 */
export function Person(props: { hub: Hub }) {
  const [form, setForm] = useState({
    idType: String(IdType.RESIDENT_ID),
    idNumber: "",
    name: "",
    birthDate: "",
    sex: String(Sex.FEMALE),
  });
  const [events, setEvents] = useState<LogEvent[]>();
  const [error, setError] = useState<string>();
  const field = (k: keyof typeof form) => (e: { currentTarget: { value: string } }) =>
    setForm({ ...form, [k]: e.currentTarget.value });
  const look = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const identity = create(IdentitySchema, {
        idType: Number(form.idType),
        idNumber: form.idNumber.trim(),
        name: form.name.trim(),
        sex: Number(form.sex),
        ...(form.birthDate
          ? { birthDate: timestampFromDate(new Date(`${form.birthDate}T00:00:00Z`)) }
          : {}),
      });
      setEvents((await props.hub.audit.getPersonHistory({ identity })).events);
    } catch (err) {
      setEvents(undefined);
      setError(errorText(err));
    }
  };
  const idTypes = [
    IdType.RESIDENT_ID,
    IdType.BIRTH_CERTIFICATE,
    IdType.PASSPORT,
    IdType.TRAVEL_PERMIT,
  ];
  return (
    <section>
      <form class="person" onSubmit={look}>
        <select name="id-type" value={form.idType} onChange={field("idType")}>
          {idTypes.map((t) => (
            <option value={String(t)}>{enumName(IdType, t)}</option>
          ))}
        </select>
        <input
          name="id-number"
          placeholder="id number"
          value={form.idNumber}
          onInput={field("idNumber")}
        />
        <input name="name" placeholder="name" value={form.name} onInput={field("name")} />
        <input name="birth-date" type="date" value={form.birthDate} onInput={field("birthDate")} />
        <select name="sex" value={form.sex} onChange={field("sex")}>
          <option value={String(Sex.FEMALE)}>FEMALE</option>
          <option value={String(Sex.MALE)}>MALE</option>
        </select>
        <button type="submit">Show history</button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {events && (
        <table>
          <thead>
            <tr>
              <th>Position</th>
              <th>Version</th>
              <th>Event</th>
              <th>Recorded</th>
              <th>What it says</th>
            </tr>
          </thead>
          <tbody>
            {events.map((ev) => (
              <tr data-event={ev.type}>
                <td>{String(ev.position)}</td>
                <td>{String(ev.streamVersion)}</td>
                <td>{ev.type}</td>
                <td>{when(ev.recordedAt)}</td>
                <td class="data">{summary(ev.data)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {events?.length === 0 && <p class="empty">The hub holds no event for this person.</p>}
    </section>
  );
}

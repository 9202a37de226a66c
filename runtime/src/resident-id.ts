/** GB 11643 resident ID numbers: 17 digits and an ISO 7064 MOD 11-2 check character. */
const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/** The check character of the first 17 digits (0-9 or X). */
export function residentIdCheck(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * (WEIGHTS[i] ?? 0);
  return "10X98765432"[sum % 11] ?? "";
}

/** A complete resident ID from its first 17 digits. */
export function residentId(first17: string): string {
  return first17 + residentIdCheck(first17);
}

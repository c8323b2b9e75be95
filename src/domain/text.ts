import { z } from "zod";

/** Text a person types (an id, a search, a note): a NUL or control character is a 400 at the boundary, never a database error later. */
export const printableText = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]+$/u, "must not contain control characters");

import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';

export interface Issue {
  /** JSON pointer of the offending value ('' for the root). */
  path: string;
  message: string;
  /** true when a required property is absent (as opposed to present but wrong). */
  missing: boolean;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; issues: Issue[] };

export interface Validator<S extends TSchema> {
  readonly schema: S;
  check(value: unknown): value is Static<S>;
  parse(value: unknown): Parsed<Static<S>>;
}

/**
 * Compile a schema once (at module load) into a validator. Every message that crosses a
 * process boundary is checked by one of these before any code looks at it.
 */
export function validator<S extends TSchema>(schema: S): Validator<S> {
  const compiled = Compile(schema);
  return {
    schema,
    check: (value: unknown): value is Static<S> => compiled.Check(value),
    parse(value: unknown): Parsed<Static<S>> {
      if (compiled.Check(value)) return { ok: true, value };
      const errors = compiled.Errors(value);
      const issues = errors
        // A closed object (`additionalProperties: false`) reports each unknown field, then
        // itself once more: the fields say it better.
        .filter(
          (e) =>
            e.keyword !== 'additionalProperties' ||
            !errors.some((f) => f.schemaPath === `${e.schemaPath}/additionalProperties`),
        )
        .map((e): Issue => {
          if (e.keyword === 'boolean' && e.schemaPath.endsWith('/additionalProperties')) {
            return { path: e.instancePath, message: 'is not a known field', missing: false };
          }
          return {
            path:
              e.keyword === 'required'
                ? `${e.instancePath}/${(e.params as { requiredProperties?: string[] }).requiredProperties?.join(',') ?? ''}`
                : e.instancePath,
            message: e.message,
            missing: e.keyword === 'required',
          };
        });
      return { ok: false, issues };
    },
  };
}

export function formatIssues(issues: readonly Issue[]): string {
  return issues.map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('; ');
}

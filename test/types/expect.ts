// Compile-time assertions. `Equals` tells `any`, `unknown` and `never` apart.
export type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Compiles only when `T` is exactly `true`. */
export function expectTrue<T extends true>(): void {}

/** Compiles only when the argument's type is exactly `Expected`. */
export function expectType<Expected>() {
  return <Actual>(_value: Actual, ..._proof: Equals<Actual, Expected> extends true ? [] : [never]): void => {};
}

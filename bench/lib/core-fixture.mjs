// The Python side of the call-overhead benchmarks (core.mjs, core-cpu.mjs): the same functions
// and object, so both measure the same operations.
export const CORE_FIXTURE = `
def noop():
    pass
def three(a, b, c):
    return c
class Holder:
    attr = 1
holder = Holder()
`;

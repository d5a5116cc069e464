// The WebAssembly global of Node 22, as far as schema-engine.ts uses it (@types/node 22
// does not declare it; TypeScript's declaration lives in lib.dom, which Node code must
// not pull in).
declare namespace WebAssembly {
  type ModuleImports = Record<string, unknown>;
  type Imports = Record<string, ModuleImports>;
  type Exports = Record<string, unknown>;
  interface Module {
    readonly __brand: 'WebAssembly.Module';
  }
  interface Instance {
    readonly exports: Exports;
  }
  const Module: new (bytes: Uint8Array) => Module;
  const Instance: new (module: Module, imports?: Imports) => Instance;
}

;; A wasi:http/proxy handler that traps at once (`unreachable`): what a guest's bug looks like
;; to the host. Built by build.mjs like hello.wat.
(module
  (memory (export "memory") 1)
  (func (export "wasi:http/incoming-handler@0.2.10#handle") (param $request i32) (param $outparam i32)
    unreachable)
)

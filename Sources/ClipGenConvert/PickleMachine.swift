// A minimal pickle virtual machine for what `torch.save` and TorchScript write: every opcode of
// protocols 0-5 except the extension registry and out-of-band buffers (opcodes as documented in
// CPython's `Lib/pickletools.py`). It never imports or runs anything: a GLOBAL is only a name.
// The names PyTorch rebuilds tensors and containers with are interpreted
// (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, `collections.OrderedDict`, …); any
// other class becomes an opaque `PickleObject` that still records what was set on it.
import ClipGenEngine
import Foundation

package struct PickleMachine {
  /// For error messages: the checkpoint file and the pickle's entry in it.
  let file: String
  let entry: String

  package init(file: String, entry: String) {
    self.file = file
    self.entry = entry
  }

  /// Maximum nesting of containers when the result is frozen (deeper is treated as corrupt).
  static let maximumDepth = 400
  /// Maximum number of values in the result, counting a shared value each time it is reached:
  /// a "billion laughs" pickle (tuples of tuples of the same tuple) is refused instead of
  /// expanding exponentially. A Lightning checkpoint with optimiser state has ~10^5.
  static let maximumValues = 5_000_000

  /// Runs the pickle that starts at `start` in `bytes`.
  /// - Returns: the unpickled value and the offset just after its STOP opcode.
  package func load(_ bytes: UnsafeRawBufferPointer, from start: Int = 0) throws -> (value: PickleValue, end: Int) {
    var vm = Run(bytes: bytes, pos: start, machine: self)
    // However deep the pickle nested its containers, they are freed without recursion.
    defer { dismantlePickleGraph(vm.stack + Array(vm.memo.values)) }
    let node = try vm.run()
    defer { dismantlePickleGraph([node]) }
    var freezer = PickleFreezer(machine: self)
    return (try freezer.freeze(node, depth: 0), vm.pos)
  }

  func corrupt(_ offset: Int, _ reason: String) -> CheckpointError {
    .corruptPickle(file: file, entry: entry, offset: offset, reason: reason)
  }

  // MARK: - The interpreter

  private struct Run {
    let bytes: UnsafeRawBufferPointer
    var pos: Int
    let machine: PickleMachine
    var stack: [PickleNode] = []
    var marks: [Int] = []
    var memo: [Int: PickleNode] = [:]
    /// Offset of the opcode being run (for errors).
    var opStart = 0

    init(bytes: UnsafeRawBufferPointer, pos: Int, machine: PickleMachine) {
      self.bytes = bytes
      self.pos = pos
      self.machine = machine
    }

    func error(_ reason: String) -> CheckpointError { machine.corrupt(opStart, reason) }

    // Reading operands.
    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
      guard n >= 0, n <= bytes.count - pos else {
        throw error("operand of \(n) bytes runs past the end of the pickle (\(bytes.count - pos) left; truncated?)")
      }
      defer { pos += n }
      return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }
    mutating func u8() throws -> Int { Int(try take(1)[0]) }
    mutating func u16() throws -> Int { Int(UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self))) }
    mutating func u32() throws -> Int { Int(UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self))) }
    mutating func i32() throws -> Int { Int(Int32(littleEndian: try take(4).loadUnaligned(as: Int32.self))) }
    mutating func u64() throws -> Int {
      let v = UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self))
      guard v <= UInt64(Int.max) else { throw error("length \(v) is out of range") }
      return Int(v)
    }
    /// A newline-terminated text operand (protocol 0).
    mutating func line() throws -> String {
      var end = pos
      while end < bytes.count, bytes[end] != 0x0A { end += 1 }
      guard end < bytes.count else { throw error("text operand has no terminating newline (truncated?)") }
      let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[pos..<end]), as: UTF8.self)
      pos = end + 1
      return s
    }
    mutating func utf8(_ n: Int) throws -> String {
      let raw = try take(n)
      guard let s = String(validating: raw, as: UTF8.self) else { throw error("string operand is not valid UTF-8") }
      return s
    }

    /// Nothing a pickle names is ever imported or run here. Still, a checkpoint that names a
    /// global able to run code or touch the system (`os.system`, `builtins.eval`,
    /// `subprocess.Popen`, …) is not a checkpoint but an attack on the tools that do run them:
    /// refused, naming the global. Other unknown classes stay opaque values (Lightning's
    /// hyper-parameters, numpy scalars).
    func refuseIfDangerous(_ module: String, _ name: String) throws {
      let top = module.split(separator: ".").first.map(String.init) ?? module
      let dangerousModules: Set<String> = [
        "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy", "pty", "ctypes",
        "multiprocessing", "asyncio", "webbrowser", "code", "codeop", "pickle", "_pickle", "marshal", "types",
        "commands", "popen2", "signal", "_thread", "_posixsubprocess", "builtins.__dict__",
      ]
      let dangerousBuiltins: Set<String> = [
        "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals", "locals",
        "vars", "input", "breakpoint", "exit", "quit", "help", "memoryview", "apply", "execfile", "file",
      ]
      let isBuiltins = top == "builtins" || top == "__builtin__" || top == "__builtins__"
      let dangerous =
        dangerousModules.contains(top) || (isBuiltins && dangerousBuiltins.contains(name))
        || (top == "torch" && (name == "load" || module.hasPrefix("torch.hub")))
      if dangerous {
        throw error(
          "the pickle names \(module).\(name), which can run code or touch the system; "
            + "this is not a plain checkpoint, and clipgen will not read it")
      }
    }

    // The stack.
    mutating func pop() throws -> PickleNode {
      guard stack.count > (marks.last ?? 0) else { throw error("stack underflow") }
      return stack.removeLast()
    }
    mutating func popMark() throws -> [PickleNode] {
      guard let m = marks.popLast() else { throw error("no MARK to pop to") }
      guard m <= stack.count else { throw error("MARK above the stack top") }
      let items = Array(stack[m...])
      stack.removeSubrange(m...)
      return items
    }
    func top() throws -> PickleNode {
      guard stack.count > (marks.last ?? 0), let t = stack.last else { throw error("stack underflow") }
      return t
    }
    mutating func push(_ n: PickleNode) { stack.append(n) }

    mutating func memoGet(_ i: Int) throws -> PickleNode {
      guard let n = memo[i] else { throw error("memo key \(i) was never stored") }
      return n
    }
    mutating func memoPut(_ i: Int) throws { memo[i] = try top() }

    mutating func run() throws -> PickleNode {
      while true {
        opStart = pos
        let op = try u8()
        switch op {
        case 0x80:  // PROTO
          let p = try u8()
          guard p <= 5 else { throw error("pickle protocol \(p) is newer than 5") }
        case 0x95: _ = try u64()  // FRAME: a length hint only
        case 0x2E:  // STOP
          let v = try pop()
          return v
        case 0x28:  // MARK
          marks.append(stack.count)
        case 0x30: _ = try pop()  // POP
        case 0x31: _ = try popMark()  // POP_MARK
        case 0x32: push(try top())  // DUP

        // Scalars.
        case 0x4E: push(.value(.none))  // NONE
        case 0x88: push(.value(.bool(true)))  // NEWTRUE
        case 0x89: push(.value(.bool(false)))  // NEWFALSE
        case 0x4B: push(.value(.int(try u8())))  // BININT1
        case 0x4D: push(.value(.int(try u16())))  // BININT2
        case 0x4A: push(.value(.int(try i32())))  // BININT
        case 0x49:  // INT (text; "00"/"01" are False/True in protocol 0)
          let s = try line()
          if s == "00" {
            push(.value(.bool(false)))
          } else if s == "01" {
            push(.value(.bool(true)))
          } else if let i = Int(s) {
            push(.value(.int(i)))
          } else {
            throw error("INT operand '\(s)' is not an integer")
          }
        case 0x4C:  // LONG (text, trailing L)
          var s = try line()
          if s.hasSuffix("L") { s.removeLast() }
          guard let i = Int(s) else {
            push(.value(.unsupported("int '\(s)'")))
            continue
          }
          push(.value(.int(i)))
        case 0x8A: push(.value(longValue(Array(try take(try u8())))))  // LONG1
        case 0x8B:  // LONG4
          let n = try i32()
          guard n >= 0 else { throw error("negative LONG4 length") }
          push(.value(longValue(Array(try take(n)))))
        case 0x47:  // BINFLOAT (big-endian double)
          push(.value(.float(Double(bitPattern: UInt64(bigEndian: try take(8).loadUnaligned(as: UInt64.self))))))
        case 0x46:  // FLOAT (text)
          let s = try line()
          guard let d = Double(s) else { throw error("FLOAT operand '\(s)' is not a number") }
          push(.value(.float(d)))

        // Strings and bytes.
        case 0x58: push(.value(.string(try utf8(try u32()))))  // BINUNICODE
        case 0x8C: push(.value(.string(try utf8(try u8()))))  // SHORT_BINUNICODE
        case 0x8D: push(.value(.string(try utf8(try u64()))))  // BINUNICODE8
        case 0x56: push(.value(.string(Self.rawUnicodeEscape(try line()))))  // UNICODE (raw-unicode-escape)
        case 0x42: push(.value(.bytes(Array(try take(try u32())))))  // BINBYTES
        case 0x43: push(.value(.bytes(Array(try take(try u8())))))  // SHORT_BINBYTES
        case 0x8E: push(.value(.bytes(Array(try take(try u64())))))  // BINBYTES8
        case 0x96: push(.value(.bytes(Array(try take(try u64())))))  // BYTEARRAY8
        // Python 2 `str`: Python 3 unpickles it as text (encoding ASCII / latin-1 in torch).
        case 0x54:  // BINSTRING
          let n = try i32()
          guard n >= 0 else { throw error("negative BINSTRING length") }
          push(.value(.string(Self.latin1(try take(n)))))
        case 0x55: push(.value(.string(Self.latin1(try take(try u8())))))  // SHORT_BINSTRING
        case 0x53:  // STRING (quoted repr)
          var s = try line()
          if s.count >= 2, let f = s.first, f == "'" || f == "\"", s.last == f {
            s = String(s.dropFirst().dropLast())
          }
          push(.value(.string(s)))

        // Containers.
        case 0x29: push(.tuple(PickleTuple([])))  // EMPTY_TUPLE
        case 0x74: push(.tuple(PickleTuple(try popMark())))  // TUPLE
        case 0x85: push(.tuple(PickleTuple([try pop()])))  // TUPLE1
        case 0x86:  // TUPLE2
          let b = try pop()
          let a = try pop()
          push(.tuple(PickleTuple([a, b])))
        case 0x87:  // TUPLE3
          let c = try pop()
          let b = try pop()
          let a = try pop()
          push(.tuple(PickleTuple([a, b, c])))
        case 0x5D: push(.list(PickleList()))  // EMPTY_LIST
        case 0x6C:  // LIST
          let l = PickleList()
          l.items = try popMark()
          push(.list(l))
        case 0x7D: push(.dict(PickleDict()))  // EMPTY_DICT
        case 0x64:  // DICT
          let items = try popMark()
          guard items.count % 2 == 0 else { throw error("DICT with an odd number of items") }
          let d = PickleDict()
          for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
          push(.dict(d))
        case 0x8F: push(.set(PickleSet()))  // EMPTY_SET
        case 0x91:  // FROZENSET
          let s = PickleSet()
          s.items = try popMark()
          push(.set(s))
        case 0x61:  // APPEND
          let v = try pop()
          try append([v], to: try top())
        case 0x65:  // APPENDS
          let items = try popMark()
          try append(items, to: try top())
        case 0x90:  // ADDITEMS
          let items = try popMark()
          guard case .set(let s) = try top() else { throw error("ADDITEMS on something that is not a set") }
          s.items += items
        case 0x73:  // SETITEM
          let v = try pop()
          let k = try pop()
          try setItems([(k, v)], on: try top())
        case 0x75:  // SETITEMS
          let items = try popMark()
          guard items.count % 2 == 0 else { throw error("SETITEMS with an odd number of items") }
          var pairs: [(PickleNode, PickleNode)] = []
          pairs.reserveCapacity(items.count / 2)
          for i in stride(from: 0, to: items.count, by: 2) { pairs.append((items[i], items[i + 1])) }
          try setItems(pairs, on: try top())

        // The memo.
        case 0x70:  // PUT
          let s = try line()
          guard let i = Int(s) else { throw error("PUT key '\(s)' is not an integer") }
          try memoPut(i)
        case 0x71: try memoPut(try u8())  // BINPUT
        case 0x72: try memoPut(try u32())  // LONG_BINPUT
        case 0x94: memo[memo.count] = try top()  // MEMOIZE
        case 0x67:  // GET
          let s = try line()
          guard let i = Int(s) else { throw error("GET key '\(s)' is not an integer") }
          push(try memoGet(i))
        case 0x68: push(try memoGet(try u8()))  // BINGET
        case 0x6A: push(try memoGet(try u32()))  // LONG_BINGET

        // Objects.
        case 0x63:  // GLOBAL "module\nname\n"
          let module = try line()
          let name = try line()
          try refuseIfDangerous(module, name)
          push(.value(.global(module: module, name: name)))
        case 0x93:  // STACK_GLOBAL
          let name = try pop()
          let module = try pop()
          guard case .value(.string(let m)) = module, case .value(.string(let n)) = name else {
            throw error("STACK_GLOBAL operands are not strings")
          }
          try refuseIfDangerous(m, n)
          push(.value(.global(module: m, name: n)))
        case 0x52:  // REDUCE
          let args = try pop()
          let callable = try pop()
          guard let a = args.tupleItems else { throw error("REDUCE arguments are not a tuple") }
          push(try call(callable, a))
        case 0x81:  // NEWOBJ
          let args = try pop()
          let cls = try pop()
          guard let a = args.tupleItems else { throw error("NEWOBJ arguments are not a tuple") }
          push(try instantiate(cls, a))
        case 0x92:  // NEWOBJ_EX
          _ = try pop()  // kwargs
          let args = try pop()
          let cls = try pop()
          guard let a = args.tupleItems else { throw error("NEWOBJ_EX arguments are not a tuple") }
          push(try instantiate(cls, a))
        case 0x69:  // INST "module\nname\n", arguments above a MARK
          let module = try line()
          let name = try line()
          let args = try popMark()
          push(try instantiate(.value(.global(module: module, name: name)), args))
        case 0x6F:  // OBJ: MARK class args...
          var items = try popMark()
          guard !items.isEmpty else { throw error("OBJ without a class") }
          let cls = items.removeFirst()
          push(try instantiate(cls, items))
        case 0x62:  // BUILD
          let state = try pop()
          try build(try top(), state)
        case 0x51:  // BINPERSID
          push(try persistentLoad(try pop()))
        case 0x50:  // PERSID (text id)
          push(try persistentLoad(.value(.string(try line()))))
        case 0x82, 0x83, 0x84:
          throw CheckpointError.unsupportedPickle(
            file: machine.file, entry: machine.entry, offset: opStart,
            reason: "opcode EXT\(op == 0x82 ? 1 : op == 0x83 ? 2 : 4) (the copyreg extension registry) is not supported"
          )
        case 0x97, 0x98:
          throw CheckpointError.unsupportedPickle(
            file: machine.file, entry: machine.entry, offset: opStart,
            reason: "out-of-band buffers (pickle protocol 5 NEXT_BUFFER/READONLY_BUFFER) are not supported")
        default:
          throw CheckpointError.unsupportedPickle(
            file: machine.file, entry: machine.entry, offset: opStart,
            reason: "unknown opcode 0x\(String(op, radix: 16, uppercase: false)) (corrupt data, or not a pickle)")
        }
      }
    }

    func longValue(_ b: [UInt8]) -> PickleValue {
      if b.isEmpty { return .int(0) }
      if b.count <= 8 {
        var v: UInt64 = 0
        for (i, byte) in b.enumerated() { v |= UInt64(byte) << UInt64(8 * i) }
        if b.count < 8, b[b.count - 1] & 0x80 != 0 { v |= ~UInt64(0) << UInt64(8 * b.count) }
        return .int(Int(Int64(bitPattern: v)))
      }
      return .bigInt(b)
    }

    static func latin1(_ raw: UnsafeRawBufferPointer) -> String {
      String(String.UnicodeScalarView(raw.map { Unicode.Scalar($0) }))
    }

    /// Python's raw-unicode-escape: `\uXXXX` and `\UXXXXXXXX` escapes, everything else literal.
    static func rawUnicodeEscape(_ s: String) -> String {
      guard s.contains("\\u") || s.contains("\\U") else { return s }
      var out = String.UnicodeScalarView()
      let scalars = Array(s.unicodeScalars)
      var i = 0
      while i < scalars.count {
        if scalars[i] == "\\", i + 1 < scalars.count, scalars[i + 1] == "u" || scalars[i + 1] == "U" {
          let n = scalars[i + 1] == "u" ? 4 : 8
          if i + 2 + n <= scalars.count,
            let v = UInt32(String(String.UnicodeScalarView(scalars[(i + 2)..<(i + 2 + n)])), radix: 16),
            let u = Unicode.Scalar(v)
          {
            out.append(u)
            i += 2 + n
            continue
          }
        }
        out.append(scalars[i])
        i += 1
      }
      return String(out)
    }

    func append(_ items: [PickleNode], to target: PickleNode) throws {
      switch target {
      case .list(let l): l.items += items
      case .instance(let o): o.listItems += items
      case .set(let s): s.items += items
      default: throw error("APPEND to something that is not a list")
      }
    }

    func setItems(_ pairs: [(PickleNode, PickleNode)], on target: PickleNode) throws {
      switch target {
      case .dict(let d): d.items += pairs
      case .instance(let o): o.dictItems += pairs
      default: throw error("SETITEM on something that is not a dict")
      }
    }

    func build(_ target: PickleNode, _ state: PickleNode) throws {
      switch target {
      case .instance(let o): o.state = state
      // A dict subclass's instance attributes (a state dict's `_metadata`), a Parameter's
      // hooks state: nothing the engine reads.
      case .dict, .list, .set, .value: break
      default: throw error("BUILD on a value that cannot take state")
      }
    }

    // MARK: Calls

    /// REDUCE: PyTorch's rebuild functions and Python's containers are interpreted; anything
    /// else becomes an opaque instance.
    func call(_ callable: PickleNode, _ args: [PickleNode]) throws -> PickleNode {
      guard case .value(.global(let module, let name)) = callable else {
        if case .instance(let o) = callable {
          return .instance(PickleInstance(className: o.className, arguments: args))
        }
        throw error("REDUCE on something that is not a class or function")
      }
      switch (module, name) {
      case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
        return .value(.tensor(try tensor(args, dtypeOverride: nil)))
      case ("torch._utils", "_rebuild_tensor_v3"):
        guard args.count >= 7, case .value(.global(_, let dtypeName)) = args[6] else {
          throw error("_rebuild_tensor_v3 without a dtype argument")
        }
        return .value(.tensor(try tensor(args, dtypeOverride: dtypeName)))
      case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
        guard let first = args.first, case .value(.tensor(let t)) = first else {
          if let first = args.first, case .value(.unsupported) = first { return first }
          throw error("\(name) without a tensor argument")
        }
        var grad = t.requiresGrad
        if args.count > 1, case .value(.bool(let g)) = args[1] { grad = g }
        return .value(
          .tensor(
            PyTorchTensorRecord(
              storage: t.storage, storageOffset: t.storageOffset, shape: t.shape, strides: t.strides, dtype: t.dtype,
              requiresGrad: grad, isParameter: true)))
      case ("torch._tensor", "_rebuild_from_type_v2"), ("torch._tensor", "_rebuild_from_type"):
        // (func, new_type, args, state): the tensor is func(*args); the subclass is dropped.
        guard args.count >= 3, let inner = args[2].tupleItems else { throw error("\(name) with malformed arguments") }
        return try call(args[0], inner)
      case ("collections", "OrderedDict"), ("builtins", "dict"), ("__builtin__", "dict"):
        let d = PickleDict()
        if let first = args.first {
          let pairs: [PickleNode]
          switch first {
          case .list(let l): pairs = l.items
          case .tuple(let t): pairs = t.items
          default: pairs = []
          }
          for p in pairs {
            if let kv = p.tupleItems, kv.count == 2 { d.items.append((kv[0], kv[1])) }
          }
        }
        return .dict(d)
      case ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset"):
        let s = PickleSet()
        if let first = args.first, case .list(let l) = first { s.items = l.items }
        if let t = args.first?.tupleItems { s.items = t }
        return .set(s)
      case ("builtins", "list"), ("__builtin__", "list"):
        let l = PickleList()
        if let first = args.first, case .list(let src) = first { l.items = src.items }
        if let t = args.first?.tupleItems { l.items = t }
        return .list(l)
      case ("torch", "Size"):
        if let first = args.first, case .tuple = first { return first }
        return .tuple(PickleTuple([]))
      case ("torch.jit._pickle", "restore_type_tag"):
        guard let first = args.first else { throw error("restore_type_tag without a value") }
        return first
      case ("torch.jit._pickle", let n) where n.hasPrefix("build_") && n.hasSuffix("list"):
        let l = PickleList()
        if let first = args.first, case .list(let src) = first { l.items = src.items }
        return .list(l)
      case ("_codecs", "encode"):
        // Python 3's pickling of `bytes` at protocol 2: _codecs.encode(text, 'latin1').
        guard let first = args.first, case .value(.string(let s)) = first else { return .value(.bytes([])) }
        var encoding = "latin1"
        if args.count > 1, case .value(.string(let e)) = args[1] { encoding = e.lowercased() }
        if encoding == "utf-8" || encoding == "utf8" { return .value(.bytes(Array(s.utf8))) }
        return .value(.bytes(s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }))
      case ("torch._utils", let n) where n.hasPrefix("_rebuild_"):
        return .value(.unsupported("tensor rebuilt by torch._utils.\(n) (not a dense CPU tensor; not supported)"))
      default:
        return .instance(PickleInstance(className: "\(module).\(name)", arguments: args))
      }
    }

    /// NEWOBJ / INST / OBJ: `cls.__new__(cls, *args)`.
    func instantiate(_ cls: PickleNode, _ args: [PickleNode]) throws -> PickleNode {
      guard case .value(.global(let module, let name)) = cls else {
        throw error("NEWOBJ on something that is not a class")
      }
      switch (module, name) {
      case ("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "set"), ("builtins", "list"):
        return try call(cls, [])
      default:
        return .instance(PickleInstance(className: "\(module).\(name)", arguments: args))
      }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
    /// [metadata])` and its relatives.
    func tensor(_ args: [PickleNode], dtypeOverride: String?) throws -> PyTorchTensorRecord {
      guard args.count >= 4 else { throw error("tensor rebuild with \(args.count) arguments (expected at least 4)") }
      guard case .value(.storage(let storage)) = args[0] else {
        throw error("tensor rebuild whose first argument is not a storage")
      }
      guard case .value(.int(let offset)) = args[1], offset >= 0 else {
        throw error("tensor rebuild with a storage offset that is not a non-negative integer")
      }
      func ints(_ node: PickleNode, _ what: String) throws -> [Int] {
        guard let items = node.tupleItems else { throw error("tensor \(what) is not a tuple") }
        return try items.map {
          guard case .value(.int(let v)) = $0, v >= 0 else {
            throw error("tensor \(what) holds a value that is not a non-negative integer")
          }
          return v
        }
      }
      let shape = try ints(args[2], "size")
      let strides = try ints(args[3], "stride")
      guard shape.count == strides.count else {
        throw error("tensor size \(shape) and stride \(strides) differ in length")
      }
      var grad = false
      if args.count > 4, case .value(.bool(let g)) = args[4] { grad = g }
      let dtype: DType? = dtypeOverride.map { PyTorchStorageType.dtype(ofDTypeName: $0) } ?? storage.dtype
      return PyTorchTensorRecord(
        storage: storage, storageOffset: offset, shape: shape, strides: strides, dtype: dtype, requiresGrad: grad,
        isParameter: false)
    }

    /// A persistent id: `('storage', torch.FloatStorage, key, location, numel)` (zip and
    /// TorchScript) or `('storage', type, root_key, location, numel, view_metadata)` (legacy).
    func persistentLoad(_ pid: PickleNode) throws -> PickleNode {
      guard let items = pid.tupleItems, items.count >= 5, case .value(.string("storage")) = items[0] else {
        return .value(.unsupported("persistent object (not a tensor storage)"))
      }
      let className: String
      switch items[1] {
      case .value(.global(_, let n)): className = n
      case .value(.string(let n)): className = n
      default: throw error("storage persistent id without a storage type")
      }
      let key: String
      switch items[2] {
      case .value(.string(let k)): key = k
      case .value(.int(let k)): key = String(k)
      default: throw error("storage persistent id without a key")
      }
      var location = ""
      if case .value(.string(let l)) = items[3] { location = l }
      var count: Int?
      if case .value(.int(let c)) = items[4] { count = c }
      if items.count > 5, case .tuple = items[5] {
        return .value(.unsupported("legacy storage view (saved by a very old PyTorch; not supported)"))
      }
      return .value(
        .storage(
          PyTorchStorage(
            key: key, className: className, dtype: PyTorchStorageType.dtype(ofStorageClass: className),
            elementCount: count, location: location)))
    }
  }
}

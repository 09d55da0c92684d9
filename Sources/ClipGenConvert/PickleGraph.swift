// The graph a pickle builds while it runs (PickleMachine.swift): mutable containers that the memo
// shares, frozen into `PickleValue`s at STOP with depth and size limits, and released without
// recursion however deep it nests.
import ClipGenEngine
import Foundation

/// Mutable containers while the pickle runs (the memo shares them; SETITEMS/APPENDS/BUILD mutate
/// them after they were stored). Frozen into `PickleValue`s at STOP.
final class PickleList {
  var items: [PickleNode] = []
}

final class PickleDict {
  var items: [(PickleNode, PickleNode)] = []
}

final class PickleSet {
  var items: [PickleNode] = []
}

/// A tuple, as an object so that a tuple the pickle shares (through its memo) is frozen once and
/// freed without recursion.
final class PickleTuple {
  var items: [PickleNode]
  init(_ items: [PickleNode]) { self.items = items }
}

final class PickleInstance {
  let className: String
  let arguments: [PickleNode]
  var state: PickleNode?
  var listItems: [PickleNode] = []
  var dictItems: [(PickleNode, PickleNode)] = []
  init(className: String, arguments: [PickleNode]) {
    self.className = className
    self.arguments = arguments
  }
}

indirect enum PickleNode {
  /// An immutable leaf (scalars, strings, globals, tensors, storages).
  case value(PickleValue)
  case tuple(PickleTuple)
  case list(PickleList)
  case dict(PickleDict)
  case set(PickleSet)
  case instance(PickleInstance)
}

extension PickleNode {
  /// The items when this is a tuple.
  var tupleItems: [PickleNode]? {
    if case .tuple(let t) = self { return t.items }
    return nil
  }
}

/// Runs one pickle. `PickleMachine.load` returns the value at STOP and where it ended.

/// Releases a graph of nodes one level at a time: each container's children are moved onto a
/// work list before the container goes, so no release recurses (a pickle nesting a million
/// tuples would otherwise overflow the stack while being freed).
func dismantlePickleGraph(_ roots: [PickleNode]) {
  var work = roots
  while let node = work.popLast() {
    switch node {
    case .value: break
    case .tuple(let t):
      work.append(contentsOf: t.items)
      t.items = []
    case .list(let l):
      work.append(contentsOf: l.items)
      l.items = []
    case .set(let s):
      work.append(contentsOf: s.items)
      s.items = []
    case .dict(let d):
      for (k, v) in d.items { work += [k, v] }
      d.items = []
    case .instance(let o):
      work.append(contentsOf: o.arguments)
      if let state = o.state { work.append(state) }
      work.append(contentsOf: o.listItems)
      for (k, v) in o.dictItems { work += [k, v] }
      o.state = nil
      o.listItems = []
      o.dictItems = []
    }
  }
}

/// Turns the mutable containers into values; a container reached again while it is being
/// frozen (a cycle) becomes `.unsupported`.
struct PickleFreezer {
  let machine: PickleMachine
  /// Frozen containers and their logical sizes (values in them, shared ones counted each time).
  var done: [ObjectIdentifier: (PickleValue, Int)] = [:]
  var active: Set<ObjectIdentifier> = []
  var visited = 0

  mutating func freeze(_ node: PickleNode, depth: Int) throws -> PickleValue {
    guard depth < PickleMachine.maximumDepth else {
      throw machine.corrupt(0, "values nested deeper than \(PickleMachine.maximumDepth) levels")
    }
    visited += 1
    guard visited <= PickleMachine.maximumValues else { throw tooMany() }
    switch node {
    case .value(let v): return v
    case .tuple(let t):
      return try shared(t) { me in .tuple(try t.items.map { try me.freeze($0, depth: depth + 1) }) }
    case .list(let l):
      return try shared(l) { me in .list(try l.items.map { try me.freeze($0, depth: depth + 1) }) }
    case .set(let s):
      return try shared(s) { me in .set(try s.items.map { try me.freeze($0, depth: depth + 1) }) }
    case .dict(let d):
      return try shared(d) { me in
        .dict(
          try d.items.map {
            (key: try me.freeze($0.0, depth: depth + 1), value: try me.freeze($0.1, depth: depth + 1))
          })
      }
    case .instance(let o):
      return try shared(o) { me in
        .object(
          PickleObject(
            className: o.className,
            arguments: try o.arguments.map { try me.freeze($0, depth: depth + 1) },
            state: try o.state.map { try me.freeze($0, depth: depth + 1) },
            listItems: try o.listItems.map { try me.freeze($0, depth: depth + 1) },
            dictItems: try o.dictItems.map {
              (key: try me.freeze($0.0, depth: depth + 1), value: try me.freeze($0.1, depth: depth + 1))
            }))
      }
    }
  }

  func tooMany() -> CheckpointError {
    machine.corrupt(
      0, "more than \(PickleMachine.maximumValues) values (shared values repeated exponentially: a pickle bomb?)")
  }

  private mutating func shared(_ object: AnyObject, _ make: (inout PickleFreezer) throws -> PickleValue) throws
    -> PickleValue
  {
    let id = ObjectIdentifier(object)
    if let (v, size) = done[id] {
      // Frozen once, but counted every time it is reached: the result's logical size.
      visited += size - 1
      guard visited <= PickleMachine.maximumValues else { throw tooMany() }
      return v
    }
    if active.contains(id) { return .unsupported("recursive reference") }
    active.insert(id)
    let before = visited
    let v = try make(&self)
    active.remove(id)
    done[id] = (v, visited - before + 1)
    return v
  }
}

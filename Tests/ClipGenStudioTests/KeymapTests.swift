// The one table of key bindings: dispatch and help are both made from it, so a test walks the
// table instead of trusting either.
import Foundation
import Testing

@testable import ClipGenStudio

@Suite("Keymap")
struct KeymapTests {
  /// Every key of every binding resolves to that binding's action in its context: no key is
  /// bound twice in one place, and no context binding hides a binding that works everywhere.
  @Test func everyBindingResolvesToItsAction() {
    for b in Keymap.bindings {
      for key in b.keys {
        #expect(
          Keymap.action(for: key, in: b.context, everywhere: false) == b.action,
          "\(key) in \(b.context) is bound to more than one action")
        if [.prompt, .history, .preview, .region].contains(b.context) {
          #expect(
            Keymap.action(for: key, in: .everywhere) == nil,
            "\(key) is bound both in \(b.context) and everywhere")
        }
      }
    }
    // Printable keys that work everywhere type themselves in the prompt.
    #expect(Keymap.action(for: .character("q"), in: .prompt, textEntry: true) == nil)
    #expect(Keymap.action(for: .character("q"), in: .history) == .quit)
    #expect(Keymap.action(for: .function(2), in: .prompt, textEntry: true) == .pickStyle)
  }

  /// The help screen is the table: scrolled from top to bottom it shows every section, every
  /// binding's keys and what they do.
  @Test func helpShowsEveryBinding() throws {
    let h = try StudioHarness(width: 120, height: 40)
    h.keys(.function(1))
    var seen = h.screen
    for _ in 0..<(StudioRenderer.helpLines().count / 10 + 1) {
      h.keys(.pageDown)
      seen += h.screen
    }
    for context in KeyContext.allCases { #expect(seen.contains(context.title), "\(context.title)") }
    for b in Keymap.bindings {
      #expect(seen.contains(b.label), "help lacks the keys \(b.label)")
      #expect(seen.contains(String(b.help.prefix(40))), "help lacks \(b.help)")
    }
  }

  /// Each short hint in the status bar names keys bound where it is shown.
  @Test func statusBarHintsAreBound() {
    func bound(_ contexts: [KeyContext]) -> Set<String> {
      Set(Keymap.bindings.filter { contexts.contains($0.context) }.flatMap { $0.keys.map(\.description) })
    }
    func tokens(_ hint: String) -> [String] {
      hint.split(whereSeparator: { $0 == "/" || $0 == " " }).map(String.init)
    }
    for (pane, context) in [(Pane.prompt, KeyContext.prompt), (.history, .history), (.preview, .preview)] {
      let keys = bound([context, .everywhere])
      for running in [false, true] {
        for hint in Keymap.hints(for: pane, running: running) {
          for t in tokens(hint.key) { #expect(keys.contains(t), "\(pane) hint \(hint.key) is not bound") }
        }
      }
    }
    let compare = bound([.compare])
    for running in [false, true] {
      for hint in Keymap.compareHints(running: running) {
        for t in tokens(hint.key) { #expect(compare.contains(t), "compare hint \(hint.key) is not bound") }
      }
    }
  }

  /// Keys the old dispatch answered to without the help saying so now come from the table:
  /// History's Home/End, Preview's ↑/↓, Compare's Tab and Delete.
  @Test func keysTheHelpDidNotListWorkAsListed() throws {
    let h = try StudioHarness()
    h.keys(.function(5))
    #expect(h.studio.state.compare == nil)  // nothing to compare yet: the prompt is empty
    h.type("a red circle")
    h.keys(.function(5))
    #expect(h.studio.state.compare?.selected == 0)
    h.keys(.tab)
    #expect(h.studio.state.compare?.selected == 1)
    h.keys(.delete)
    #expect(h.studio.state.compare?.columns.count == 2)
    h.keys(.backTab)
    #expect(h.studio.state.compare?.selected == 0)
    h.keys(.escape)
    #expect(h.studio.state.compare == nil)
  }
}

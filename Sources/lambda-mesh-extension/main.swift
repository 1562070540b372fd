import Foundation
import MeshExtension

// The Lambda extension (README.md, `lambda-mesh-extension`): configured by its environment only, registered
// under its own file name. Exits 1 after an Init failure it has reported, 0 after SHUTDOWN.
let name = URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent
exit(ExtensionMain.run(name: name, environment: ProcessInfo.processInfo.environment))

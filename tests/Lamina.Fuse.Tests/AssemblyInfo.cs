// The transport is Linux-only; so are its tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

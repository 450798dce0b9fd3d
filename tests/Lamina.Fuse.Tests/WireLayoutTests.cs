using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Lamina.Fuse.Tests.Infrastructure;
using Lamina.Fuse.Wire;
using Xunit.Abstractions;

namespace Lamina.Fuse.Tests;

public sealed class WireLayoutTests(ITestOutputHelper output)
{
    public static TheoryData<string> StructNames()
    {
        var data = new TheoryData<string>();
        foreach (var s in WireLayout.All) data.Add(s.Type.Name);
        return data;
    }

    private static WireStruct Spec(string name) => WireLayout.All.Single(s => s.Type.Name == name);

    private static int UnsafeSize(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    private static int FieldWidth(Type t)
    {
        if (t.IsEnum) t = Enum.GetUnderlyingType(t);
        return Marshal.SizeOf(t);
    }

    [Theory]
    [MemberData(nameof(StructNames))]
    public void Struct_matches_the_layout_of_fuse_h(string name)
    {
        var spec = Spec(name);
        Assert.Equal(spec.Size, UnsafeSize(spec.Type));
        Assert.Equal(spec.Size, Marshal.SizeOf(spec.Type));

        var declared = spec.Type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).Select(f => f.Name).ToList();
        var listed = spec.Fields.Select(f => f.Cs).ToList();
        Assert.True(declared.SequenceEqual(listed),
            $"{name}: C# fields [{string.Join(", ", declared)}] differ from the checked list [{string.Join(", ", listed)}]");

        foreach (var f in spec.Fields)
            Assert.True(f.Offset == (int)Marshal.OffsetOf(spec.Type, f.Cs),
                $"{name}.{f.Cs} (C {spec.C}.{f.C}) is at {(int)Marshal.OffsetOf(spec.Type, f.Cs)}, fuse.h puts it at {f.Offset}");

        // Every field ends where the next begins, or before: no field overlaps its successor.
        var fields = spec.Fields.OrderBy(f => f.Offset).ToArray();
        for (int i = 0; i < fields.Length; i++)
        {
            var fi = spec.Type.GetField(fields[i].Cs, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)!;
            int end = fields[i].Offset + FieldWidth(fi.FieldType);
            int limit = i + 1 < fields.Length ? fields[i + 1].Offset : spec.Size;
            Assert.True(end <= limit, $"{name}.{fields[i].Cs} ends at {end}, past {limit}");
        }
    }

    [Fact]
    public void Values_newer_than_the_installed_header_match_upstream()
    {
        // Re-derived from the 7.45 header (the machine's /usr/include/linux/fuse.h is 7.38).
        Assert.Equal(1UL << 37, (ulong)InitFlags.Passthrough);
        Assert.Equal(1UL << 34, (ulong)InitFlags.CreateSuppGroup);
        Assert.Equal(1UL << 36, (ulong)InitFlags.DirectIoAllowMmap);
        Assert.Equal(1UL << 38, (ulong)InitFlags.NoExportSupport);
        Assert.Equal(1UL << 39, (ulong)InitFlags.HasResend);
        Assert.Equal(1UL << 40, (ulong)InitFlags.AllowIdmap);
        Assert.Equal(1UL << 41, (ulong)InitFlags.OverIoUring);
        Assert.Equal(1u << 7, (uint)OpenReplyFlags.Passthrough);
        Assert.Equal(52u, (uint)Opcode.Statx);
        Assert.Equal(7, (int)NotifyCode.Resend);
        Assert.Equal(32u, FuseConstants.ExtGroups);
        Assert.Equal(45u, FuseConstants.KernelMinorVersion);
        Assert.Equal(31u, FuseConstants.MinimumMinorVersion);
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr, with _IOC_READ = 2 and _IOC_WRITE = 1.
        Assert.Equal(0x8004E500UL, FuseConstants.DevIocClone);        // _IOR(229, 0, uint32_t)
        Assert.Equal(0x4010E501UL, FuseConstants.DevIocBackingOpen);  // _IOW(229, 1, struct fuse_backing_map)
        Assert.Equal(0x4004E502UL, FuseConstants.DevIocBackingClose); // _IOW(229, 2, uint32_t)
        // Offsets the 7.38 header does not have. fuse_init_out: major 0, minor 4, max_readahead 8, flags 12,
        // max_background 16, congestion_threshold 18, max_write 20, time_gran 24, max_pages 28,
        // map_alignment 30, flags2 32, max_stack_depth 36 (was unused[0]), request_timeout 40 (u16, was unused[1]).
        Assert.Equal(12, (int)Marshal.OffsetOf<OpenOut>(nameof(OpenOut.BackingId)));
        Assert.Equal(36, (int)Marshal.OffsetOf<InitOut>(nameof(InitOut.MaxStackDepth)));
        Assert.Equal(40, (int)Marshal.OffsetOf<InitOut>(nameof(InitOut.RequestTimeout)));
        Assert.Equal(2, Marshal.SizeOf<ushort>());
    }

    [Fact]
    public void EntryOut_timeouts_split_into_seconds_and_nanoseconds()
    {
        var e = new EntryOut();
        e.SetTimeouts(TimeSpan.FromMilliseconds(1500), TimeSpan.FromSeconds(-1));
        Assert.Equal(1UL, e.EntryValid);
        Assert.Equal(500_000_000u, e.EntryValidNsec);
        Assert.Equal(0UL, e.AttrValid);
        Assert.Equal(0u, e.AttrValidNsec);
        var a = new AttrOut();
        a.SetTimeout(TimeSpan.FromTicks(12_345_678_9));
        Assert.Equal(12UL, a.AttrValid);
        Assert.Equal(345_678_900u, a.AttrValidNsec);
    }

    /// <summary>
    /// Compiles a C program against the installed &lt;linux/fuse.h&gt; and compares sizeof, offsetof, the
    /// width of every member, and every constant with the C# definitions. Members and constants the
    /// installed header is too old for are compared by the hand-derived test above, and listed here.
    /// </summary>
    [GccFact]
    public void Layout_and_constants_match_the_installed_fuse_h_compiled_by_gcc()
    {
        var c = new StringBuilder();
        c.AppendLine("#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <sys/ioctl.h>\n#include <linux/fuse.h>\nint main(void) {");
        c.AppendLine("printf(\"minor %d\\n\", FUSE_KERNEL_MINOR_VERSION);");
        foreach (var s in WireLayout.All)
        {
            if (s.Since > 0) c.AppendLine($"#if FUSE_KERNEL_MINOR_VERSION >= {s.Since}");
            c.AppendLine($"printf(\"size {s.C} %zu\\n\", sizeof(struct {s.C}));");
            foreach (var f in s.Fields)
            {
                if (f.Since > 0) c.AppendLine($"#if FUSE_KERNEL_MINOR_VERSION >= {f.Since}");
                Member(c, s, f, f.C);
                if (f.Since > 0)
                {
                    c.AppendLine("#else");
                    if (f.COld is not null) Member(c, s, f, f.COld);
                    c.AppendLine($"printf(\"old {s.C}.{f.C} via {f.COld}\\n\");");
                    c.AppendLine("#endif");
                }
            }
            if (s.Since > 0) c.AppendLine($"#else\nprintf(\"old {s.C}\\n\");\n#endif");
        }
        foreach (var k in WireLayout.Constants)
        {
            if (k.Since > 0) c.AppendLine($"#if FUSE_KERNEL_MINOR_VERSION >= {k.Since}");
            // Flags below bit 32 are int macros ((1 << 31) is negative): compare them as the u32 they travel in.
            string cast = k.Value <= uint.MaxValue ? "(unsigned long long)(uint32_t)" : "(unsigned long long)";
            c.AppendLine($"printf(\"const {k.Label} %llu\\n\", {cast}({k.C}));");
            if (k.Since > 0) c.AppendLine($"#else\nprintf(\"old {k.Label}\\n\");\n#endif");
        }
        c.AppendLine("return 0; }");

        string dir = Directory.CreateTempSubdirectory("lamina-fuseh-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "layout.c"), c.ToString());
            var (rc, stdout, stderr) = Run(Conditions.Gcc!, dir, "-std=gnu11", "-Wall", "-Werror", "-o", "layout", "layout.c");
            Assert.True(rc == 0, $"gcc failed:\n{stderr}");
            (rc, stdout, stderr) = Run(Path.Combine(dir, "layout"), dir);
            Assert.True(rc == 0, $"layout program failed: {stderr}");

            var results = new Dictionary<string, ulong>();
            var old = new List<string>();
            int minor = 0;
            foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var p = line.Split(' ');
                if (p[0] == "minor") minor = int.Parse(p[1], CultureInfo.InvariantCulture);
                else if (p[0] == "old") old.Add(string.Join(' ', p[1..]));
                else results[p[0] + " " + p[1]] = ulong.Parse(p[2], CultureInfo.InvariantCulture);
            }
            output.WriteLine($"installed fuse.h is 7.{minor}; {results.Count} values compared by gcc");
            foreach (var o in old) output.WriteLine($"  newer than the installed header (checked by hand instead): {o}");

            var failures = new List<string>();
            int compared = 0;
            void Check(string key, ulong expected)
            {
                if (!results.TryGetValue(key, out var got)) return;
                compared++;
                if (got != expected) failures.Add($"{key}: C says {got}, C# has {expected}");
            }
            foreach (var s in WireLayout.All)
            {
                Check($"size {s.C}", (ulong)Marshal.SizeOf(s.Type));
                Check($"size {s.C}", (ulong)s.Size); // the hand-derived table must agree with the compiler too
                foreach (var f in s.Fields)
                {
                    var fi = s.Type.GetField(f.Cs, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)!;
                    Check($"offset {s.C}.{f.C}", (ulong)Marshal.OffsetOf(s.Type, f.Cs));
                    Check($"offset {s.C}.{f.C}", (ulong)f.Offset);
                    Check($"width {s.C}.{f.C}", (ulong)FieldWidth(fi.FieldType));
                }
            }
            foreach (var k in WireLayout.Constants) Check($"const {k.Label}", k.Value);
            Assert.True(failures.Count == 0, "C# differs from <linux/fuse.h>:\n" + string.Join('\n', failures));
            Assert.True(compared > 400, $"only {compared} values compared: the generated program printed too little");
            Assert.True(minor >= 31, $"installed header is 7.{minor}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Member(StringBuilder c, WireStruct s, WireField f, string member)
    {
        c.AppendLine($"printf(\"offset {s.C}.{f.C} %zu\\n\", offsetof(struct {s.C}, {member}));");
        // A stand-in member of an older header (unused[1] for a u16) can be wider: compare widths only for the real member.
        if (member == f.C) c.AppendLine($"printf(\"width {s.C}.{f.C} %zu\\n\", sizeof(((struct {s.C} *)0)->{member}));");
    }

    internal static (int Rc, string Stdout, string Stderr) Run(string file, string dir, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, o, err.Result);
    }
}

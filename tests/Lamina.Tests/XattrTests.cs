using System.Text;
using Lamina.Native;

namespace Lamina.Tests;

public class XattrTests
{
    /// <summary>
    /// A file open for writing answers getxattr from its handle's descriptor (the kernel asks for
    /// security.capability before every write): the same answers as by path, the size query and
    /// ERANGE included, and the union's own markers stay hidden.
    /// </summary>
    [Fact]
    public void A_file_open_for_writing_answers_getxattr_from_its_handle_as_by_path()
    {
        using var t = new TestLayers(1);
        TestLayers.WriteFile(t.Lowers[0], "f", "data");
        TestLayers.SetXattr(Path.Combine(t.Lowers[0], "f"), "user.color", "blue");
        using var fs = t.Mount();

        (Errno, int, string) Get(string name, int room)
        {
            var buf = new byte[room];
            int size = 0;
            var e = fs.Paths.WithNode("/f", n => fs.GetXattr(n, name, buf, out size));
            return e == Errno.None ? (e, size, Encoding.UTF8.GetString(buf, 0, Math.Min(size, room))) : (e, 0, ""); // the size means nothing with an error
        }

        var byPath = new[] { Get("user.color", 64), Get("user.color", 0), Get("user.color", 2), Get("user.none", 64), Get("security.capability", 64) };
        fs.Paths.Open("/f", Sys.O_WRONLY, out var h).Ok(); // copies up: the handle's descriptor is the upper file
        using (h)
        {
            Assert.True(File.Exists(Path.Combine(t.Upper!, "f")));
            // A marker on the upper copy, as copy-up may leave (origin): never shown, by handle or path.
            TestLayers.SetXattr(Path.Combine(t.Upper!, "f"), "trusted.overlay.origin", "x");
            var byHandle = new[] { Get("user.color", 64), Get("user.color", 0), Get("user.color", 2), Get("user.none", 64), Get("security.capability", 64) };
            Assert.Equal(byPath, byHandle);
            Assert.Equal((Errno.None, 4, "blue"), byHandle[0]);
            Assert.Equal(Errno.ERANGE, byHandle[2].Item1);
            Assert.Equal(Errno.ENODATA, byHandle[3].Item1);
            Assert.Equal(Errno.ENODATA, Get("trusted.overlay.origin", 64).Item1);

            // Changed directly in the branch while open: the handle reads the file as it is now.
            TestLayers.SetXattr(Path.Combine(t.Upper!, "f"), "user.color", "green");
            Assert.Equal((Errno.None, 5, "green"), Get("user.color", 64));
        }
        Assert.Equal((Errno.None, 5, "green"), Get("user.color", 64)); // and by path once closed
    }
}

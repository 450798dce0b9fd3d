using Lamina.Branches;
using Lamina.Policies;

namespace Lamina.Tests;

public class OptionParserTests
{
    [Fact]
    public void Overlay_options_give_upper_then_lowers_leftmost_first()
    {
        var o = OptionParser.ParseOverlay("lowerdir=/l1:/l2:/l3,upperdir=/u,workdir=/w,userxattr,redirect_dir=on,metacopy=off,xino=auto,index=off,rw,noatime,allow_other,default_permissions,fsname=x,subtype=lamina");
        Assert.Equal(["/u", "/l1", "/l2", "/l3"], o.Branches.Select(b => b.Path));
        Assert.Equal([BranchMode.ReadWrite, BranchMode.ReadOnly, BranchMode.ReadOnly, BranchMode.ReadOnly], o.Branches.Select(b => b.Mode));
        Assert.Equal("/w", o.WorkDir);
        Assert.True(o.UserXattr);
        Assert.False(o.Index);
        Assert.Equal(RedirectDirMode.On, o.RedirectDir);
        Assert.Equal("x", o.MountFlags["fsname"]);
    }

    [Fact]
    public void Escaped_separators_stay_in_paths()
    {
        var o = OptionParser.ParseOverlay(@"lowerdir=/a\:b:/c\,d");
        Assert.Equal(["/a:b", "/c,d"], o.Branches.Select(b => b.Path));
    }

    [Fact]
    public void Lower_only_union_is_read_only()
    {
        var o = OptionParser.ParseOverlay("lowerdir=/a:/b");
        Assert.All(o.Branches, b => Assert.Equal(BranchMode.ReadOnly, b.Mode));
        Assert.Null(o.WorkDir);
    }

    [Theory]
    [InlineData("lowerdir=/a,bogus", "bogus")]
    [InlineData("lowerdir=/a,frobnicate=1", "frobnicate")]
    [InlineData("upperdir=/u,workdir=/w", "lowerdir")]
    [InlineData("lowerdir=/a,upperdir=/u", "workdir")]
    [InlineData("lowerdir=/a,redirect_dir=sideways", "redirect_dir")]
    [InlineData("lowerdir=/a,index=maybe", "index")]
    [InlineData("lowerdir=/a,userxattr=1", "userxattr")]
    [InlineData("lowerdir=/a,func.frob=ff", "func.frob")]
    [InlineData("lowerdir=/a,category.create=bestest", "category.create")]
    public void Bad_options_are_named_in_the_error(string options, string named)
    {
        var ex = Assert.Throws<UnionConfigException>(() => OptionParser.ParseOverlay(options));
        Assert.Contains(named, ex.Message);
        Assert.Equal(named, ex.Subject);
    }

    [Fact]
    public void Mergerfs_branch_list_with_modes_and_policies()
    {
        var o = OptionParser.ParseBranchList("/a=RW:/b=RO:/c=NC:/d", "category.create=mfs,func.mkdir=epff,allow_other");
        Assert.Equal([BranchMode.ReadWrite, BranchMode.ReadOnly, BranchMode.NoCreate, BranchMode.ReadWrite], o.Branches.Select(b => b.Mode));
        Assert.Equal(PolicyKind.MostFreeSpace, o.Policies.Create.Kind);
        Assert.Equal(PolicyKind.ExistingPathFirstFound, o.Policies.Mkdir.Kind);
        Assert.Equal(PolicyKind.MostFreeSpace, o.Policies.CopyUp.Kind);
        Assert.Null(o.WorkDir);
    }

    [Fact]
    public void Mergerfs_unknown_mode_names_the_branch()
    {
        var ex = Assert.Throws<UnionConfigException>(() => OptionParser.ParseBranchList("/a=RW:/b=XX"));
        Assert.Contains("'/b'", ex.Message);
        Assert.Equal("/b", ex.Subject);
    }

    [Theory]
    [InlineData("ff", PolicyKind.FirstFound)]
    [InlineData("epff", PolicyKind.ExistingPathFirstFound)]
    [InlineData("mfs", PolicyKind.MostFreeSpace)]
    [InlineData("epmfs", PolicyKind.ExistingPathMostFreeSpace)]
    [InlineData("lus", PolicyKind.LeastUsedSpace)]
    [InlineData("rr", PolicyKind.RoundRobin)]
    [InlineData("rand", PolicyKind.Random)]
    public void Policy_names(string name, PolicyKind kind) => Assert.Equal(kind, Policy.Parse(name)!.Kind);
}

package main

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/containerfs/containerfs/internal/daemon"
	"github.com/spf13/cobra"
)

// libcgroup's group tools, as containerfs subcommands with libcgroup's
// options and output: they reach every hierarchy through the daemon,
// mounted or not.

func cgcreateCmd() *cobra.Command {
	var groups []string
	cmd := &cobra.Command{
		Use:   "cgcreate -g CONTROLLERS:PATH...",
		Short: "Create groups, with their parents, in the hierarchies of the controllers (cgcreate)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(groups) == 0 {
				return fmt.Errorf("cgcreate: no -g CONTROLLERS:PATH given: %w", syscall.EINVAL)
			}
			return call(daemon.Request{Op: "cgcreate", Groups: groups}, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&groups, "group", "g", nil, "CONTROLLERS:PATH to create (repeatable)")
	return cmd
}

func cgdeleteCmd() *cobra.Command {
	var groups []string
	var recursive bool
	cmd := &cobra.Command{
		Use:   "cgdelete [-r] [-g] CONTROLLERS:PATH...",
		Short: "Remove groups; their tasks move to the parent (cgdelete)",
		RunE: func(cmd *cobra.Command, args []string) error {
			groups = append(groups, args...)
			if len(groups) == 0 {
				return fmt.Errorf("cgdelete: no CONTROLLERS:PATH given: %w", syscall.EINVAL)
			}
			return call(daemon.Request{Op: "cgdelete", Groups: groups, Recursive: recursive}, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&groups, "group", "g", nil, "CONTROLLERS:PATH to remove (repeatable)")
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove the subgroups too")
	return cmd
}

func cgsetCmd() *cobra.Command {
	var settings []string
	cmd := &cobra.Command{
		Use:   "cgset -r NAME=VALUE... PATH...",
		Short: "Write control files of groups (cgset)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(daemon.Request{Op: "cgset", Settings: settings, Paths: args}, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&settings, "variable", "r", nil, "NAME=VALUE to write, as memory.limit_in_bytes=100M (repeatable)")
	return cmd
}

func cggetCmd() *cobra.Command {
	var names, gs []string
	var noHeaders, valuesOnly bool
	cmd := &cobra.Command{
		Use:   "cgget [-n] [-v] [-r NAME]... [-g CONTROLLER]... PATH... | cgget [-n] [-v] -g CONTROLLERS:PATH...",
		Short: "Print control files of groups (cgget)",
		RunE: func(cmd *cobra.Command, args []string) error {
			req := daemon.Request{Op: "cgget", Names: names, Paths: args, NoHeaders: noHeaders, ValuesOnly: valuesOnly}
			for _, g := range gs {
				if strings.Contains(g, ":") {
					req.Groups = append(req.Groups, g)
				} else {
					req.Controllers = append(req.Controllers, g)
				}
			}
			return call(req, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&names, "variable", "r", nil, "file to print (repeatable)")
	cmd.Flags().StringArrayVarP(&gs, "group", "g", nil, "CONTROLLER whose files to print, or CONTROLLERS:PATH (repeatable)")
	cmd.Flags().BoolVarP(&noHeaders, "no-headers", "n", false, "do not print the groups' names")
	cmd.Flags().BoolVarP(&valuesOnly, "values-only", "v", false, "print only the values")
	return cmd
}

func lscgroupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lscgroup [CONTROLLERS:PATH]...",
		Short: "List groups as CONTROLLERS:/PATH, all of them or those at and below the given ones (lscgroup)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(daemon.Request{Op: "lscgroup", Groups: args}, cmd.OutOrStdout())
		},
	}
}

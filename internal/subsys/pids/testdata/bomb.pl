#!/usr/bin/perl
# A bounded fork bomb for the pids tests: bomb.pl N SLEEP.
# It prints "ready", waits for a line on stdin (the test moves it into a
# container meanwhile), then tries N forks as fast as it can; each child
# sleeps SLEEP seconds and exits. It prints "done OK FAILED" (forks that
# returned a child, forks that failed) and then waits for stdin to close or
# for SIGKILL. SIGCHLD is ignored so that the kernel reaps the children at
# once: a killed child never lingers as a zombie.
use strict;
use warnings;
$| = 1;
$SIG{CHLD} = 'IGNORE';
my ($n, $sleep) = @ARGV;
print "ready $$\n";
my $go = <STDIN>;
my ($ok, $fail) = (0, 0);
for (1 .. $n) {
    my $pid = fork;
    if (!defined $pid) {
        $fail++;
        next;
    }
    if ($pid == 0) {
        sleep $sleep;
        exit 0;
    }
    $ok++;
}
print "done $ok $fail\n";
my $end = <STDIN>;

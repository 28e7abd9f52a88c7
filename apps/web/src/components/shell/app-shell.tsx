"use client";
/** The frame of every signed-in page: top navigation, live-link state, user, and the system footer. */
import { Bell, Boxes, Gauge, KeyRound, LayoutGrid, MessagesSquare, Plus, Rocket, ScrollText, Sprout, Users } from "lucide-react";
import Link from "next/link";
import { usePathname } from "next/navigation";
import type { ReactNode } from "react";
import { AlertsNavCount } from "@/components/alerts/alerts-nav-count";
import { useAlertsSync } from "@/components/alerts/use-alerts";
import { useChatSync } from "@/lib/chat-live";
import { cn } from "@/lib/cn";
import { useFleetSync } from "@/lib/realtime";
import type { Role } from "@orchard/client";
import { useCan } from "@/lib/use-role";
import { ConnectionIndicator } from "./connection-indicator";
import { SystemFooter } from "./system-footer";
import { UserMenu } from "./user-menu";

type NavItem = {
  href: string;
  label: string;
  testId: string;
  icon: typeof Bell;
  active: (p: string) => boolean;
  badge?: () => ReactNode;
  /** Shown only to this role and above (the server refuses the page's data to the others anyway). */
  minRole?: Role;
};

const NAV: NavItem[] = [
  { href: "/", label: "Fleet", testId: "nav-fleet", icon: LayoutGrid, active: (p: string) => p === "/" || p.startsWith("/devices") },
  { href: "/chat", label: "Chat", testId: "nav-chat", icon: MessagesSquare, active: (p: string) => p.startsWith("/chat") },
  { href: "/benchmarks", label: "Benchmarks", testId: "nav-benchmarks", icon: Gauge, active: (p: string) => p.startsWith("/benchmarks") },
  { href: "/models", label: "Models", testId: "nav-models", icon: Boxes, active: (p: string) => p.startsWith("/models") },
  { href: "/rollouts", label: "Rollouts", testId: "nav-rollouts", icon: Rocket, active: (p: string) => p.startsWith("/rollouts") },
  {
    href: "/alerts",
    label: "Alerts",
    testId: "nav-alerts",
    icon: Bell,
    active: (p: string) => p.startsWith("/alerts"),
    // The number of open alerts, after the label (on a phone, after the icon).
    badge: AlertsNavCount,
  },
  { href: "/enroll", label: "Enroll", testId: "nav-enroll", icon: Plus, active: (p: string) => p.startsWith("/enroll"), minRole: "admin" },
  {
    href: "/settings/api-keys",
    label: "API keys",
    testId: "nav-api-keys",
    icon: KeyRound,
    active: (p: string) => p.startsWith("/settings/api-keys"),
  },
  { href: "/users", label: "Users", testId: "nav-users", icon: Users, active: (p: string) => p.startsWith("/users"), minRole: "admin" },
  {
    href: "/audit",
    label: "Audit",
    testId: "nav-audit",
    icon: ScrollText,
    active: (p: string) => p.startsWith("/audit"),
    minRole: "admin",
  },
];

export function AppShell({ children }: { children: ReactNode }) {
  useFleetSync();
  useChatSync();
  useAlertsSync();
  const pathname = usePathname();
  const isAdmin = useCan("admin");
  const nav = NAV.filter((item) => item.minRole !== "admin" || isAdmin);
  // Where the labels of all items do not fit beside the logo and the user (an admin's longer bar, a narrow window),
  // the pages not shown are icons (with their label for screen readers and as a tooltip); the current page keeps its label.
  const compact = nav.length > 8 ? "@max-[57rem]:sr-only" : "@max-[44rem]:sr-only";
  // A conversation fills the window (its messages scroll, its input stays at the bottom): no footer there.
  const fill = pathname.startsWith("/chat");

  return (
    <div className={cn("flex flex-col", fill ? "h-dvh" : "min-h-dvh")}>
      <header className="sticky top-0 z-20 border-b bg-background/85 backdrop-blur supports-[backdrop-filter]:bg-background/70">
        <div className="mx-auto flex h-14 max-w-screen-2xl items-center gap-2 px-4 sm:gap-4 sm:px-6">
          <Link href="/" className="flex items-center gap-2 font-semibold tracking-tight">
            <span className="flex size-7 items-center justify-center rounded-md bg-primary text-primary-foreground">
              <Sprout className="size-4" aria-hidden />
            </span>
            <span className="hidden sm:inline">Orchard</span>
          </Link>
          {/* On a phone an admin's icons can still be too many: the bar then scrolls sideways instead of running under the user
              (relative: the hidden labels stay inside it, not widening the page). */}
          <nav
            className="@container relative flex min-w-0 flex-1 items-center gap-0.5 overflow-x-auto [scrollbar-width:none] sm:gap-1"
            aria-label="Main"
          >
            {nav.map(({ href, label, testId, icon: Icon, active, badge: NavBadge }) => {
              const isActive = active(pathname);
              return (
                <Link
                  key={href}
                  href={href}
                  aria-current={isActive ? "page" : undefined}
                  data-testid={testId}
                  title={label}
                  className={cn(
                    "inline-flex h-8 items-center gap-1.5 rounded-md px-2 text-sm font-medium whitespace-nowrap transition-colors sm:px-2.5",
                    isActive ? "bg-muted text-foreground" : "text-muted-foreground hover:bg-muted/60 hover:text-foreground",
                  )}
                >
                  <Icon className="size-4 shrink-0" aria-hidden />
                  <span className={cn(!isActive && compact)}>{label}</span>
                  {NavBadge ? <NavBadge /> : null}
                </Link>
              );
            })}
          </nav>
          <div className="ml-auto flex shrink-0 items-center gap-1 sm:gap-3">
            <ConnectionIndicator />
            <UserMenu />
          </div>
        </div>
      </header>
      <main className={cn("mx-auto w-full max-w-screen-2xl flex-1 px-4 sm:px-6", fill ? "flex min-h-0 flex-col py-3 sm:py-4" : "py-6")}>
        {children}
      </main>
      {fill ? null : <SystemFooter />}
    </div>
  );
}

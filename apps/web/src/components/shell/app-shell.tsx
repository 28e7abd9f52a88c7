"use client";
/** The frame of every signed-in page: top navigation, live-link state, user, and the system footer. */
import { LayoutGrid, Plus, Sprout } from "lucide-react";
import Link from "next/link";
import { usePathname } from "next/navigation";
import type { ReactNode } from "react";
import { cn } from "@/lib/cn";
import { useFleetSync } from "@/lib/realtime";
import { ConnectionIndicator } from "./connection-indicator";
import { SystemFooter } from "./system-footer";
import { UserMenu } from "./user-menu";

const NAV = [
  { href: "/", label: "Fleet", icon: LayoutGrid, active: (p: string) => p === "/" || p.startsWith("/devices") },
  { href: "/enroll", label: "Enroll", icon: Plus, active: (p: string) => p.startsWith("/enroll") },
];

export function AppShell({ children }: { children: ReactNode }) {
  useFleetSync();
  const pathname = usePathname();

  return (
    <div className="flex min-h-dvh flex-col">
      <header className="sticky top-0 z-20 border-b bg-background/85 backdrop-blur supports-[backdrop-filter]:bg-background/70">
        <div className="mx-auto flex h-14 max-w-screen-2xl items-center gap-2 px-4 sm:gap-4 sm:px-6">
          <Link href="/" className="flex items-center gap-2 font-semibold tracking-tight">
            <span className="flex size-7 items-center justify-center rounded-md bg-primary text-primary-foreground">
              <Sprout className="size-4" aria-hidden />
            </span>
            <span className="hidden sm:inline">Orchard</span>
          </Link>
          <nav className="flex items-center gap-1" aria-label="Main">
            {NAV.map(({ href, label, icon: Icon, active }) => {
              const isActive = active(pathname);
              return (
                <Link
                  key={href}
                  href={href}
                  aria-current={isActive ? "page" : undefined}
                  data-testid={`nav-${label.toLowerCase()}`}
                  className={cn(
                    "inline-flex h-8 items-center gap-1.5 rounded-md px-2.5 text-sm font-medium transition-colors",
                    isActive ? "bg-muted text-foreground" : "text-muted-foreground hover:bg-muted/60 hover:text-foreground",
                  )}
                >
                  <Icon className="size-4" aria-hidden />
                  {label}
                </Link>
              );
            })}
          </nav>
          <div className="ml-auto flex items-center gap-1 sm:gap-3">
            <ConnectionIndicator />
            <UserMenu />
          </div>
        </div>
      </header>
      <main className="mx-auto w-full max-w-screen-2xl flex-1 px-4 py-6 sm:px-6">{children}</main>
      <SystemFooter />
    </div>
  );
}

"use client";
/** A list read with React Query, inside a card: loading, the error in words, the empty state, or the list itself. */
import type { UseQueryResult } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Alert } from "@/components/ui/alert";
import { LoadingBlock } from "@/components/ui/spinner";
import { errorMessage } from "@/lib/trpc";

export function QueryList<T, E>({
  query,
  loading,
  empty,
  children,
}: {
  query: UseQueryResult<T[], E>;
  /** What the spinner says ("Loading runs…"). */
  loading: string;
  /** Shown when the list has no items. */
  empty: ReactNode;
  children: (items: T[]) => ReactNode;
}) {
  if (query.isPending) return <LoadingBlock label={loading} />;
  if (query.isError)
    return (
      <div className="px-5 pb-5">
        <Alert>{errorMessage(query.error)}</Alert>
      </div>
    );
  return query.data.length === 0 ? empty : children(query.data);
}

"use client";
/**
 * The users page (admins): who can sign in and with which role, creating accounts,
 * changing roles, setting new passwords, deleting. The server refuses what would leave
 * no admin; its message is shown as is.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { KeyRound, Trash2, UserPlus, Users } from "lucide-react";
import { useEffect, useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { Dialog } from "@/components/ui/dialog";
import { EmptyState } from "@/components/ui/empty-state";
import { Field, Input } from "@/components/ui/input";
import { QueryList } from "@/components/ui/query-list";
import { Spinner } from "@/components/ui/spinner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime } from "@/lib/format";
import { ROLES, type Role } from "@orchard/client";
import { errorMessage, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { useCan, useMe } from "@/lib/use-role";

type User = RouterOutputs["users"]["list"][number];

export const selectClass =
  "h-9 w-full min-w-0 rounded-md border border-input bg-card px-2 text-sm shadow-xs focus-visible:ring-2 focus-visible:ring-ring/40 focus-visible:outline-none disabled:opacity-50";

const ROLE_HINT: Record<Role, string> = {
  viewer: "sees everything, changes nothing",
  operator: "also rolls out models, chats, runs benchmarks, names and tags devices",
  admin: "also manages users, API keys of others, enrollment and device deletion",
};

export function UsersPanel() {
  const isAdmin = useCan("admin");
  const me = useMe();
  if (me.isSuccess && !isAdmin) {
    return <Alert>Managing users needs the admin role; you are signed in as {me.data.role}.</Alert>;
  }
  return (
    <div className="flex flex-col gap-5">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">Users</h1>
        <p className="max-w-2xl text-sm text-muted-foreground">
          Who can sign in, and what they may do. A role change, a new password or a deletion signs the user out everywhere; their API keys
          follow their role.
        </p>
      </div>
      <div className="grid items-start gap-5 lg:grid-cols-[minmax(0,2fr)_minmax(0,3fr)]">
        <Card>
          <CardHeader>
            <CardTitle>New user</CardTitle>
            <CardDescription>Tell them the password; they can change it on the API keys page.</CardDescription>
          </CardHeader>
          <CardContent>
            <CreateUserForm />
          </CardContent>
        </Card>
        <UserList />
      </div>
    </div>
  );
}

function CreateUserForm() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const create = useMutation(
    trpc.users.create.mutationOptions({
      onSuccess: () => {
        setUsername("");
        setPassword("");
        void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
      },
    }),
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!create.isPending) create.mutate({ username: username.trim(), password, role });
  };
  return (
    <form onSubmit={submit} className="flex flex-col gap-4" data-testid="user-form" noValidate>
      <Field label="Username" htmlFor="user-name" hint="Lower-case letters, digits, '.', '_' and '-'.">
        <Input id="user-name" value={username} maxLength={64} onChange={(e) => setUsername(e.target.value)} data-testid="user-name" />
      </Field>
      <Field label="Password" htmlFor="user-password" hint="At least 8 characters.">
        <Input
          id="user-password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          data-testid="user-password"
        />
      </Field>
      <Field label="Role" htmlFor="user-role" hint={`${role}: ${ROLE_HINT[role]}.`}>
        <select
          id="user-role"
          value={role}
          onChange={(e) => setRole(e.target.value as Role)}
          className={selectClass}
          data-testid="user-role"
        >
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </Field>
      {create.isError ? <Alert>{errorMessage(create.error)}</Alert> : null}
      <div>
        <Button type="submit" disabled={!username.trim() || !password || create.isPending} data-testid="user-create">
          {create.isPending ? <Spinner className="text-primary-foreground" label="Creating" /> : <UserPlus aria-hidden />}
          Create user
        </Button>
      </div>
    </form>
  );
}

function UserList() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const users = useQuery(trpc.users.list.queryOptions());
  const me = useMe();
  const [resetting, setResetting] = useState<User | null>(null);
  const [deleting, setDeleting] = useState<User | null>(null);
  const setRole = useMutation(
    trpc.users.setRole.mutationOptions({
      onSettled: () => void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() }),
    }),
  );
  return (
    <Card>
      <CardHeader>
        <CardTitle>Users</CardTitle>
        <CardDescription>The last admin can be neither demoted nor deleted.</CardDescription>
      </CardHeader>
      {setRole.isError ? (
        <div className="px-5 pb-3">
          <Alert>{errorMessage(setRole.error)}</Alert>
        </div>
      ) : null}
      <QueryList query={users} loading="Loading users…" empty={<EmptyState icon={Users} title="No users" />}>
        {(items) => (
          <Table stack data-testid="users" aria-label="Users">
            <TableHeader>
              <TableRow>
                <TableHead>Username</TableHead>
                <TableHead>Role</TableHead>
                <TableHead>Sessions</TableHead>
                <TableHead>API keys</TableHead>
                <TableHead>Created</TableHead>
                <TableHead>
                  <span className="sr-only">Actions</span>
                </TableHead>
              </TableRow>
            </TableHeader>
            <TableBody className="max-lg:px-5 max-lg:pb-5">
              {items.map((u) => (
                <TableRow key={u.id} data-testid="user-row" data-username={u.username}>
                  <TableCell className="font-medium break-words max-lg:mb-1 max-lg:border-b max-lg:pb-2">
                    {u.username}
                    {u.username === me.data?.username ? <span className="whitespace-nowrap text-muted-foreground"> (you)</span> : null}
                  </TableCell>
                  <TableCell label="Role">
                    <select
                      aria-label={`Role of ${u.username}`}
                      value={u.role}
                      disabled={setRole.isPending}
                      onChange={(e) => setRole.mutate({ id: u.id, role: e.target.value as Role })}
                      className={`${selectClass} lg:w-28`}
                      data-testid="user-row-role"
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                  </TableCell>
                  <TableCell label="Sessions">{u.sessions}</TableCell>
                  <TableCell label="API keys">{u.apiKeys}</TableCell>
                  <TableCell label="Created" className="whitespace-nowrap">
                    {formatDateTime(u.createdAt)}
                  </TableCell>
                  <TableCell className="max-lg:mt-1 max-lg:border-t max-lg:pt-2 lg:text-right">
                    <div className="flex flex-wrap gap-1 lg:justify-end">
                      <Button variant="ghost" size="sm" onClick={() => setResetting(u)} data-testid="user-reset-password">
                        <KeyRound aria-hidden />
                        New password
                      </Button>
                      <Button
                        variant="ghost"
                        size="sm"
                        className="text-danger hover:bg-danger/10"
                        disabled={u.username === me.data?.username}
                        title={u.username === me.data?.username ? "You cannot delete your own account" : undefined}
                        onClick={() => setDeleting(u)}
                        data-testid="user-delete"
                      >
                        <Trash2 aria-hidden />
                        Delete
                      </Button>
                    </div>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </QueryList>
      <ResetPasswordDialog user={resetting} onClose={() => setResetting(null)} />
      <DeleteUserDialog user={deleting} onClose={() => setDeleting(null)} />
    </Card>
  );
}

function ResetPasswordDialog({ user, onClose }: { user: User | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [password, setPassword] = useState("");
  const reset = useMutation(
    trpc.users.resetPassword.mutationOptions({
      onSuccess: () => {
        void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
        onClose();
      },
    }),
  );
  useEffect(() => {
    setPassword("");
    reset.reset();
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [user?.id]);
  return (
    <Dialog
      open={user !== null}
      onClose={onClose}
      title={`New password for ${user?.username ?? ""}`}
      description="Their sessions end; tell them the new password."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button
            onClick={() => user && reset.mutate({ id: user.id, password })}
            disabled={!password || reset.isPending}
            data-testid="user-reset-password-confirm"
          >
            {reset.isPending ? <Spinner className="text-primary-foreground" label="Saving" /> : <KeyRound aria-hidden />}
            Set password
          </Button>
        </>
      }
    >
      <div className="flex flex-col gap-3">
        <Field label="New password" htmlFor="reset-password" hint="At least 8 characters.">
          <Input
            id="reset-password"
            type="password"
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            data-testid="user-reset-password-input"
          />
        </Field>
        {reset.isError ? <Alert>{errorMessage(reset.error)}</Alert> : null}
      </div>
    </Dialog>
  );
}

function DeleteUserDialog({ user, onClose }: { user: User | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const remove = useMutation(
    trpc.users.remove.mutationOptions({
      onSuccess: (_, input) => {
        queryClient.setQueryData(trpc.users.list.queryKey(), (rows) => rows?.filter((r) => r.id !== input.id));
        onClose();
      },
    }),
  );
  useEffect(() => {
    remove.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [user?.id]);
  return (
    <ConfirmDialog
      open={user !== null}
      onClose={onClose}
      title={`Delete ${user?.username ?? ""}?`}
      description={`${user?.username ?? ""} is signed out everywhere and their ${user?.apiKeys ?? 0} API key(s) stop working. The audit log keeps what they did.`}
      confirmLabel="Delete user"
      pendingLabel="Deleting"
      pending={remove.isPending}
      error={remove.isError ? errorMessage(remove.error) : null}
      onConfirm={() => user && remove.mutate({ id: user.id })}
      confirmTestId="user-delete-confirm"
    />
  );
}

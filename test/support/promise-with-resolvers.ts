// aws-local-stepfunctions (which declares Node >= 22) calls Promise.withResolvers; Node 20 lacks it.
type Resolvers<T> = { promise: Promise<T>; resolve: (value: T | PromiseLike<T>) => void; reject: (reason?: unknown) => void };
const promiseClass = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> };
promiseClass.withResolvers ??= <T>(): Resolvers<T> => {
  let resolve!: Resolvers<T>['resolve'];
  let reject!: Resolvers<T>['reject'];
  const promise = new Promise<T>((a, b) => { resolve = a; reject = b; });
  return { promise, resolve, reject };
};

import { Field, ID, ObjectType } from 'type-graphql';
import { DateTimeScalar } from '../shared/date-time.scalar';

@ObjectType({ description: 'A connection whose token was renewed in band' })
export class SessionRenewal {
  @Field(() => DateTimeScalar, { description: "The new token's exp: the connection now ends then, unless renewed again" })
  expiresAt!: Date;
}

@ObjectType({ description: "A revocation of a user's sessions" })
export class SessionRevocation {
  @Field(() => ID) userId!: string;
  @Field(() => DateTimeScalar, {
    description: "When it took effect: the user's tokens issued at or before this second are refused until they expire",
  })
  revokedAt!: Date;
}
